"""Tasks, results and every path of the runner, on the in-memory broker and backend."""

from __future__ import annotations

import threading
import time
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest

from taskq import MaxRetriesExceededError, TaskQ, states
from taskq.app import _LazyPublications
from taskq.brokers.base import Publication
from taskq.envelope import Envelope
from taskq.errors import ConfigurationError, TaskFailure, TaskRevokedError, TimeoutError
from taskq.task import Task
from taskq.testing import InProcessWorker
from tests.unit.conftest import inline_worker


def wait_for(predicate: Any, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.02)


def test_task_names_follow_celerys_rule(app: TaskQ) -> None:
    @app.task
    def add(a: int, b: int) -> int:
        return a + b

    @app.task(name="custom.name")
    def other() -> None: ...

    assert add.name == "tests.unit.test_tasks_and_worker.add"
    assert other.name == "custom.name" and app.get_task("custom.name") is other
    assert add(2, 3) == 5  # a plain call runs here


def test_bad_task_options_raise_at_decoration(app: TaskQ) -> None:
    for option, value in (("time_limit", -1), ("soft_time_limit", "soon"), ("rate_limit", "10/d")):
        with pytest.raises(ConfigurationError, match=option):
            app.task(**{option: value})(lambda: None)
    with pytest.raises(ConfigurationError, match="priority"):
        app.task(priority=12)(lambda: None)
    with pytest.raises(ConfigurationError, match="unexpected keyword"):
        app.task(retries_max=3)(lambda: None)


def test_send_options_are_validated(app: TaskQ) -> None:
    @app.task
    def noop() -> None: ...

    with pytest.raises(ConfigurationError, match="unknown send option"):
        noop.apply_async(countdwn=3)
    with pytest.raises(ConfigurationError, match="priority"):
        noop.apply_async(priority=10)
    with pytest.raises(ConfigurationError, match="args must be"):
        noop.apply_async(args="abc")


def test_round_trip_with_kwargs_priority_and_custom_id(taskq_app: TaskQ, taskq_worker: InProcessWorker) -> None:
    @taskq_app.task
    def greet(name: str, punctuation: str = "!") -> str:
        return f"hello {name}{punctuation}"

    r = greet.apply_async(("ann",), {"punctuation": "?"}, task_id="my-id", priority=9)
    assert r.id == "my-id"
    assert r.get(timeout=5) == "hello ann?"
    assert r.state == states.SUCCESS and r.ready() and r.successful() and not r.failed()
    assert greet.delay("bob").get(timeout=5) == "hello bob!"
    r.forget()
    assert r.state == states.PENDING


def test_failure_is_stored_with_traceback_and_raised_by_get(app: TaskQ) -> None:
    @app.task
    def boom() -> None:
        raise KeyError("missing")

    class Private(Exception):
        pass

    @app.task
    def private() -> None:
        raise Private("odd")

    with inline_worker(app):
        r = boom.delay()
        with pytest.raises(KeyError, match="missing"):
            r.get(timeout=5)
        assert r.failed() and "KeyError" in (r.traceback or "")
        assert isinstance(r.result, KeyError)
        assert isinstance(r.get(timeout=5, propagate=False), KeyError)
        with pytest.raises((Private, TaskFailure)):
            private.delay().get(timeout=5)


def test_get_times_out(app: TaskQ) -> None:
    @app.task
    def never() -> None: ...

    with pytest.raises(TimeoutError):
        never.delay().get(timeout=0.2)


def test_retry_sequence_then_success(taskq_app: TaskQ, taskq_worker: InProcessWorker) -> None:
    seen: list[int] = []

    @taskq_app.task(bind=True, max_retries=3)
    def flaky(self: Task[[], str]) -> str:
        seen.append(self.request.retries)
        if self.request.retries < 2:
            raise self.retry(exc=ConnectionError("down"), countdown=0.1)
        return "ok"

    result = flaky.delay()
    taskq_worker.wait_for_all(timeout=10)
    assert result.state == states.SUCCESS and result.result == "ok"
    assert seen == [0, 1, 2]
    assert taskq_app.broker.dead_letters() == []


def test_exhausted_retries_end_failure_and_keep_the_message(app: TaskQ) -> None:
    @app.task(autoretry_for=(ConnectionError,), max_retries=2, retry_backoff=0.01, retry_jitter=False)
    def down() -> None:
        raise ConnectionError("still down")

    with inline_worker(app):
        r = down.delay()
        with pytest.raises(ConnectionError):
            r.get(timeout=5)
    [dead] = app.broker.dead_letters()
    assert dead.id == r.id and "retries exhausted after 2" in dead.reason


def test_retry_without_exception_raises_max_retries_exceeded(app: TaskQ) -> None:
    @app.task(bind=True, max_retries=0)
    def once(self: Task[[], None]) -> None:
        self.retry(countdown=0)

    with inline_worker(app):
        with pytest.raises(MaxRetriesExceededError):
            once.delay().get(timeout=5)


def test_backoff_is_exponential_capped_and_jittered(app: TaskQ) -> None:
    @app.task(retry_backoff=2, retry_backoff_max=30, retry_jitter=False)
    def exact() -> None: ...

    @app.task(retry_backoff=True)
    def jittered() -> None: ...

    assert [exact.retry_countdown(n) for n in range(6)] == [2, 4, 8, 16, 30, 30]
    samples = [jittered.retry_countdown(3) for _ in range(200)]
    assert all(0 <= s <= 8 for s in samples) and len(set(samples)) > 100


def test_countdown_waits_in_the_broker(app: TaskQ) -> None:
    @app.task
    def stamp() -> float:
        return time.time()

    with inline_worker(app):
        sent = time.time()
        r = stamp.apply_async(countdown=0.5)
        assert app.broker.queue_length("celery") == 1
        assert r.get(timeout=5) >= sent + 0.5


def test_expired_message_is_not_run_and_ends_revoked(app: TaskQ) -> None:
    ran: list[int] = []

    @app.task
    def late() -> None:
        ran.append(1)

    with inline_worker(app):
        r = late.apply_async(expires=datetime.now(timezone.utc) - timedelta(seconds=1))
        with pytest.raises(TaskRevokedError):
            r.get(timeout=5)
        assert late.apply_async(expires=60).get(timeout=5) is None
    assert r.state == states.REVOKED and ran == [1]


def test_poison_messages_go_to_dead_letters_and_the_worker_keeps_running(app: TaskQ) -> None:
    @app.task
    def fine() -> str:
        return "fine"

    broker = app.broker
    broker.publish("celery", Envelope({"task": "no.such.task", "id": "unknown"}, b"[[], {}, {}]"))
    broker.publish("celery", Envelope({"task": fine.name, "id": "bad-body"}, b"{{{"))
    broker.publish("celery", Envelope({"task": fine.name, "id": "canvas"}, b'[[], {}, {"chain": "x"}]'))
    broker.publish("celery", Envelope({"task": fine.name, "id": "pickled"}, b"x", "application/x-python-serialize"))
    with inline_worker(app):
        assert fine.delay().get(timeout=5) == "fine"
        wait_for(lambda: len(broker.dead_letters()) == 4)
    reasons = {d.id: d.reason for d in broker.dead_letters()}
    assert "unknown task 'no.such.task'" in reasons["unknown"]
    assert "does not decode" in reasons["bad-body"]
    assert "callbacks, errbacks, chain and chord must be lists or objects" in reasons["canvas"]
    assert "not accepted" in reasons["pickled"]


def test_signing_rejects_unsigned_messages(app: TaskQ) -> None:
    @app.task
    def fine() -> str:
        return "signed"

    unsigned = fine.delay()  # sent before the key is set
    producer = TaskQ("p", broker=app.conf.broker_url, backend=app.conf.result_backend)
    producer.conf.signing_key = "k1"
    app.conf.signing_key = "k1"
    with inline_worker(app):
        assert producer.send_task(fine.name).get(timeout=5) == "signed"
        wait_for(lambda: len(app.broker.dead_letters()) == 1)
    assert app.broker.dead_letters()[0].id == unsigned.id
    assert "signature" in app.broker.dead_letters()[0].reason


def test_ignore_result_and_at_most_once(app: TaskQ) -> None:
    calls: list[str] = []

    @app.task(ignore_result=True)
    def quiet() -> str:
        calls.append("quiet")
        return "x"

    @app.task(acks_late=False)
    def early() -> str:
        calls.append("early")
        return "y"

    with inline_worker(app):
        r = quiet.delay()
        assert early.delay().get(timeout=5) == "y"
        wait_for(lambda: "quiet" in calls)
    assert r.state == states.PENDING


def test_async_def_tasks_run(taskq_app: TaskQ, taskq_worker: InProcessWorker) -> None:
    import asyncio

    @taskq_app.task
    async def double(x: int) -> int:
        await asyncio.sleep(0.01)
        return 2 * x

    assert double.delay(21).get(timeout=5) == 42


def test_delay_many_sends_in_bulk(app: TaskQ) -> None:
    @app.task
    def add(a: int, b: int) -> int:
        return a + b

    results = add.delay_many([(i, 1) for i in range(1200)])
    assert app.broker.queue_length("celery") == 1200
    with inline_worker(app, prefetch=50):
        assert [r.get(timeout=20) for r in results[:5]] == [1, 2, 3, 4, 5]
        assert sum(r.get(timeout=20) for r in results) == sum(range(1, 1201))


def test_send_many_checks_every_call_before_sending_any(app: TaskQ) -> None:
    with pytest.raises(ConfigurationError, match="args must be a list or tuple"):
        app.send_many("t.add", [((1, 2), {}), ((3, 4), {}), (5, {})])  # type: ignore[list-item]
    with pytest.raises(ConfigurationError, match="kwargs must be a dict"):
        app.send_many("t.add", [((1, 2), {}), ((), [("a", 1)])])  # type: ignore[list-item]
    with pytest.raises(TypeError, match="not JSON serializable"):  # found while encoding
        app.send_many("t.add", [((1, 2), {}), ((object(),), {})])
    assert app.broker.queue_length("celery") == 0


def test_send_many_takes_any_iterable_of_calls(app: TaskQ) -> None:
    results = app.send_many("t.add", (((i, 1), {}) for i in range(3)))  # type: ignore[arg-type]
    assert len({r.id for r in results}) == 3 and app.broker.queue_length("celery") == 3


def test_send_many_builds_each_call_when_taken_and_again_the_same() -> None:
    built: list[int] = []

    def build(index: int, task_id: str) -> Publication:
        built.append(index)
        return Publication("q", Envelope({"id": task_id, "n": index}, b"[]"))

    ids = [f"id-{i}" for i in range(_LazyPublications.KEEP + 10)]
    pubs = _LazyPublications(build, ids)
    assert built == [] and len(pubs) == len(ids)
    assert [p.envelope.id for p in pubs[:3]] == ["id-0", "id-1", "id-2"] and built == [0, 1, 2]
    assert pubs[-1].envelope.id == ids[-1] and pubs[2] is pubs[:3][2] and built == [0, 1, 2, len(ids) - 1]
    assert [p.envelope.headers["n"] for p in pubs] == list(range(len(ids)))  # a broker iterating
    assert pubs[0].envelope.id == "id-0" and built.count(0) == 2  # let go, then built again: the same
    with pytest.raises(IndexError):
        pubs[len(ids)]


def test_redelivered_finished_task_is_not_run_again(app: TaskQ) -> None:
    runs: list[int] = []

    @app.task
    def once() -> None:
        runs.append(1)

    r = once.delay()
    broker = app.broker
    [d] = broker.fetch(["celery"], 1, 1)
    app.backend.store(r.id, states.SUCCESS, None)  # type: ignore[union-attr]
    # the claim expires (recovery_time 1 s): the copy is a redelivery of a finished task
    with inline_worker(app):
        wait_for(lambda: broker.queue_length("celery") == 0)
    assert runs == [] and d.redeliveries == 0


def test_too_many_redeliveries_dead_letter_the_message(app: TaskQ) -> None:
    app.conf.max_deliveries = 1

    @app.task
    def crashy() -> None: ...

    r = crashy.delay()
    broker = app.broker
    for _ in range(2):  # two workers "die" holding it: their claims expire
        assert broker.fetch(["celery"], 1, 5)
    with inline_worker(app):
        with pytest.raises(TaskFailure, match="redelivered 2 times"):
            r.get(timeout=10)
    [dead] = broker.dead_letters()
    assert dead.id == r.id and "max_deliveries=1" in dead.reason


def test_unserializable_result_ends_failure_not_a_crash(app: TaskQ) -> None:
    @app.task
    def odd() -> object:
        return object()

    with inline_worker(app):
        with pytest.raises(TypeError, match="not JSON serializable"):
            odd.delay().get(timeout=5)
    assert app.broker.queue_length("celery") == 0


def test_fast_tasks_results_are_written_in_batches(app: TaskQ) -> None:
    backend = app.backend
    assert backend is not None
    batches: list[int] = []
    original = backend._set_many

    def counting(items: list[tuple[str, bytes]], ttl: float) -> None:
        batches.append(len(items))
        original(items, ttl)

    backend._set_many = counting  # type: ignore[method-assign]

    @app.task
    def noop() -> None: ...

    results = noop.delay_many([()] * 200)
    with inline_worker(app, prefetch=100):
        for r in results:
            r.get(timeout=10)
    assert sum(batches) == 200 and len(batches) < 50  # batched, not one write per task


@pytest.mark.parametrize("recovery_time", [1.0, 120.0])  # 120: the keeper's timer alone would sleep 40 s
def test_a_long_task_does_not_strand_messages_claimed_behind_it(app: TaskQ, recovery_time: float) -> None:
    app.conf.worker_hold_limit = 0.3
    app.conf.recovery_time = recovery_time
    release = threading.Event()
    ran_by: dict[str, str] = {}

    @app.task
    def slow() -> None:
        ran_by["slow"] = threading.current_thread().name
        release.wait(10)

    @app.task
    def fast(i: int) -> int:
        ran_by[f"fast{i}"] = threading.current_thread().name
        return i

    slow.delay()
    results = [fast.delay(i) for i in range(3)]
    # Given worker A claims all four in one batch and is stuck in the slow task
    with inline_worker(app, prefetch=4):
        wait_for(lambda: "slow" in ran_by)
        # When worker B starts, Then the fast tasks run there, long before the slow one ends
        with inline_worker(app, prefetch=4):
            assert [r.get(timeout=3) for r in results] == [0, 1, 2]
            release.set()
    assert {ran_by[f"fast{i}"] for i in range(3)} != {ran_by["slow"]}


def test_the_fetch_batch_grows_while_tasks_are_fast(app: TaskQ) -> None:
    @app.task
    def noop() -> None: ...

    results = noop.delay_many([()] * 1000)
    with inline_worker(app, prefetch=4) as consumer:
        largest = 0
        for r in results:  # one slow batch on a loaded machine starts the doubling again
            largest = max(largest, consumer.batch)
            r.get(timeout=10)
        assert max(largest, consumer.batch) == consumer.batch_max == 64


def test_an_idle_worker_keeps_its_fetch_batch_small(app: TaskQ) -> None:
    with inline_worker(app, prefetch=4) as consumer:
        time.sleep(2.5)  # the scenario: two idle fetches (FETCH_TIMEOUT 1 s), nothing to wait for
        assert consumer.batch == 4


def test_every_poison_shape_is_dead_lettered_and_the_batch_behind_it_runs(app: TaskQ) -> None:
    from tests.poison import inject, shapes

    ran: list[int] = []

    @app.task
    def fine(i: int) -> None:
        ran.append(i)

    broker = app.broker
    poison = shapes(fine.name)
    # Given every shape, in one batch with good messages before and after it
    fine.delay(0)
    inject(broker, "celery", poison)
    fine.delay(1)
    with inline_worker(app, prefetch=64) as consumer:
        wait_for(lambda: sorted(ran) == [0, 1] and len(broker.dead_letters(limit=100)) == len(poison))
        assert consumer.unexpected_errors == 0
    assert broker.queue_length("celery") == 0
    dead = broker.dead_letters(limit=100)
    assert all(d.reason for d in dead)
    wanted = {p.dead_id for p in poison if p.dead_id}
    assert wanted <= {d.id for d in dead}
    reasons = {d.id: d.reason for d in dead}
    assert "'priority' is not an integer: 'high'" in reasons["prio-word"]
    assert "'priority' is not an integer: inf" in reasons["prio-inf"]
    assert "RecursionError" in next(d.reason for d in dead if b'"id":"deep"' in d.raw)


def test_a_redelivered_message_whose_stored_result_is_not_json_is_dead_lettered(app: TaskQ) -> None:
    ran: list[int] = []

    @app.task
    def once() -> None:
        ran.append(1)

    r = once.delay()
    broker, backend = app.broker, app.backend
    assert backend is not None
    backend._set(backend.key_for(r.id), b"\x80\x04\x95pickled by celery", 60)  # result_serializer='pickle'
    assert broker.fetch(["celery"], 1, 1)  # a worker "dies" holding it: the copy is a redelivery
    with inline_worker(app) as consumer:
        wait_for(lambda: len(broker.dead_letters()) == 1)
        assert consumer.unexpected_errors == 0
        assert once.delay().get(timeout=5) is None  # the consumer still serves
    [dead] = broker.dead_letters()
    assert dead.id == r.id and f"result of task {r.id} is not a JSON document" in dead.reason
    assert ran == [1]


@pytest.mark.parametrize("exc_type", ["SystemExit", "KeyboardInterrupt", "GeneratorExit", "BaseException"])
def test_a_forged_failure_never_makes_get_raise_a_base_exception(app: TaskQ, exc_type: str) -> None:
    backend = app.backend
    assert backend is not None
    forged = {"exc_type": exc_type, "exc_module": "builtins", "exc_message": [0]}
    backend.store("forged", states.FAILURE, forged)
    with pytest.raises(TaskFailure, match=f"{exc_type}: 0"):
        app.AsyncResult("forged").get(timeout=1)
    assert isinstance(app.AsyncResult("forged").result, TaskFailure)


@pytest.mark.parametrize(
    "stored", [b"\x80\x04\x95pickle", b"\x93\x01\x02msgpack\xff", b"[1, 2]", b'{"result": 1}', b"[" * 100_000]
)
def test_an_unreadable_result_raises_invalid_result_naming_the_task(app: TaskQ, stored: bytes) -> None:
    from taskq.errors import InvalidResult

    backend = app.backend
    assert backend is not None
    backend._set(backend.key_for("odd-id"), stored, 60)
    for read in (lambda r: r.get(timeout=1), lambda r: r.state, lambda r: r.result):
        with pytest.raises(InvalidResult, match="result of task odd-id is not"):
            read(app.AsyncResult("odd-id"))


def test_max_deliveries_is_checked_before_decoding(app: TaskQ) -> None:
    # A message that kills its worker while being decoded still ends dead-lettered: the
    # broker's redelivery count is checked before anything else reads the message.
    from tests.poison import Raw, inject, valid_doc

    app.conf.max_deliveries = 0
    broker = app.broker
    inject(broker, "celery", [Raw(valid_doc("any.task", "counted"))])
    assert broker.fetch(["celery"], 1, 1)  # its worker "dies" while decoding: the claim expires
    with inline_worker(app) as consumer:
        wait_for(lambda: len(broker.dead_letters()) == 1)
        assert consumer.unexpected_errors == 0
    [dead] = broker.dead_letters()
    assert dead.id == "counted" and "redelivered 1 times (max_deliveries=0)" in dead.reason


def test_a_result_or_exception_nested_deeper_than_the_stack_ends_failure(app: TaskQ) -> None:
    def deep() -> list[Any]:
        value: list[Any] = []
        for _ in range(100_000):
            value = [value]
        return value

    @app.task
    def returns_deep() -> object:
        return deep()

    @app.task
    def raises_deep() -> None:
        raise ValueError(deep())

    with inline_worker(app) as consumer:
        with pytest.raises(RecursionError):
            returns_deep.delay().get(timeout=5)
        with pytest.raises(ValueError):
            raises_deep.delay().get(timeout=5)
        assert consumer.unexpected_errors == 0
    assert app.broker.queue_length("celery") == 0
