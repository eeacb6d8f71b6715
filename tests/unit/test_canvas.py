"""Canvas on an in-process worker (memory broker and backend): every construct, nesting,
failures, and the wire form of what is sent."""

from __future__ import annotations

import json
import uuid
from typing import Any

import pytest

from taskq import ChordError, GroupResult, TaskQ, chain, chord, group, signature
from taskq.errors import ConfigurationError
from taskq.message import parse
from tests.unit.conftest import inline_worker


@pytest.fixture
def tasks(app: TaskQ) -> dict[str, Any]:
    @app.task(name="t.add")
    def add(a: int, b: int) -> int:
        return a + b

    @app.task(name="t.mul")
    def mul(a: int, b: int) -> int:
        return a * b

    @app.task(name="t.tsum")
    def tsum(values: list[int]) -> int:
        return sum(values)

    @app.task(name="t.boom")
    def boom(*args: Any) -> None:
        raise ValueError("boom")

    @app.task(name="t.record")
    def record(*args: Any) -> list[Any]:
        return list(args)

    return {"add": add, "mul": mul, "tsum": tsum, "boom": boom, "record": record}


def test_signature_is_celerys_dict_and_round_trips(app: TaskQ, tasks: dict[str, Any]) -> None:
    sig = tasks["add"].s(1).set(queue="q", countdown=5, priority=3)
    assert json.loads(json.dumps(sig)) == {
        "task": "t.add", "args": [1], "kwargs": {}, "options": {"queue": "q", "countdown": 5, "priority": 3},
        "subtask_type": None, "immutable": False,
    }
    again = signature(json.loads(json.dumps(sig)), app=app)
    assert again == sig and again.clone((2,)).args == [2, 1]
    assert tasks["add"].si(1, 2).clone((9,)).args == [1, 2]  # immutable: partial args ignored
    with pytest.raises(ConfigurationError, match="unknown signature option"):
        sig.set(bogus=1)


def test_chain_message_embeds_the_rest_reversed(app: TaskQ, tasks: dict[str, Any]) -> None:
    c = chain(tasks["add"].s(1, 2), tasks["mul"].s(3), tasks["add"].s(4))
    result, pubs = c.prepare()
    (pub,) = pubs
    msg = parse(pub.envelope, app.accepted)
    assert msg.args == [1, 2] and msg.id == result.parent.parent.id
    assert msg.embed is not None
    assert [s["task"] for s in msg.embed["chain"]] == ["t.add", "t.mul"]  # popped from the end
    assert msg.embed["chain"][0]["options"]["task_id"] == result.id


def test_chain_group_chord_run_on_a_worker(app: TaskQ, tasks: dict[str, Any]) -> None:
    add, mul, tsum = tasks["add"], tasks["mul"], tasks["tsum"]
    with inline_worker(app):
        r = (add.s(1, 2) | mul.s(10) | add.s(5)).apply_async()
        assert r.get(timeout=10) == 35
        assert r.parent.get(timeout=1) == 30 and r.parent.parent.get(timeout=1) == 3
        assert [v for _, v in r.parent.parent.collect(timeout=5)] == [3, 30, 35]
        assert r.parent.parent.children[0].id == r.parent.id

        g = group(add.s(i, i) for i in range(10)).apply_async()
        assert isinstance(g, GroupResult)
        assert g.get(timeout=10) == [2 * i for i in range(10)]
        assert g.ready() and g.successful() and not g.failed() and g.completed_count() == 10
        g.save()
        restored = GroupResult.restore(g.id, app)
        assert restored is not None and [x.id for x in restored.results] == [x.id for x in g.results]

        c = chord([add.s(i, 1) for i in range(20)], tsum.s()).apply_async()
        assert c.get(timeout=10) == sum(range(1, 21))
        assert c.parent.get(timeout=1) == list(range(1, 21))

        assert add.map([]).apply_async().get(timeout=5) == []  # celery.map with nothing
        assert tasks["record"].map([1, 2]).delay().get(timeout=5) == [[1], [2]]
        assert add.starmap([(1, 2), (3, 4)]).delay().get(timeout=5) == [3, 7]
        assert add.chunks([(i, i) for i in range(5)], 2).apply_async().get(timeout=5) == [[0, 2], [4, 6], [8]]


def test_nesting(app: TaskQ, tasks: dict[str, Any]) -> None:
    add, mul, tsum = tasks["add"], tasks["mul"], tasks["tsum"]
    with inline_worker(app):
        # a group inside a chain feeds the next step (Celery makes it a chord)
        r = chain(add.s(1, 1), group(mul.s(2), mul.s(3)), tsum.s()).apply_async()
        assert r.get(timeout=10) == 2 * 2 + 2 * 3
        # a chain inside a group
        g = group(chain(add.s(1, 1), mul.s(5)), add.s(0, 7)).apply_async()
        assert g.get(timeout=10) == [10, 7]
        # a chord of chains
        c = chord([chain(add.s(i, 0), mul.s(2)) for i in range(5)], tsum.s()).apply_async()
        assert c.get(timeout=10) == 2 * sum(range(5))
        # a chain ending in a chord, then one more step after the chord
        r = chain(add.s(1, 0), chord([add.s(1), add.s(2)], tsum.s()), mul.s(10)).apply_async()
        assert r.get(timeout=10) == ((1 + 1) + (1 + 2)) * 10
        # a chain ending in a group
        g = chain(add.s(2, 2), group(mul.s(1), mul.s(2))).apply_async()
        assert g.get(timeout=10) == [4, 8]
        # a group after a group: each member of the second gets the first's results
        g = chain(group(add.s(1, 1), add.s(2, 2)), group(tsum.s(), tsum.s())).apply_async()
        assert g.get(timeout=10) == [6, 6]
        # a chord inside a chord's header, and a chord inside a group
        inner = chord([add.s(1, 1), add.s(2, 2)], tsum.s())
        assert chord([inner, add.s(10, 0)], tsum.s()).apply_async().get(timeout=10) == 16
        assert group(inner, add.s(1, 0)).apply_async().get(timeout=10) == [6, 1]


def test_failures_stop_chains_and_fail_chords(app: TaskQ, tasks: dict[str, Any]) -> None:
    add, boom, tsum, record = tasks["add"], tasks["boom"], tasks["tsum"], tasks["record"]
    errs = f"errs-{uuid.uuid4().hex}"
    with inline_worker(app):
        r = chain(add.s(1, 1), boom.s(), add.s(1)).apply_async()
        with pytest.raises(ValueError, match="boom"):
            r.get(timeout=10)
        assert r.parent.failed() and r.parent.parent.successful()

        c = chord([add.s(1, 1), boom.s(), add.s(2, 2)], tsum.s().on_error(record.si(errs))).apply_async()
        with pytest.raises(ChordError, match=f"Dependency {c.parent.results[1].id} raised ValueError"):
            c.get(timeout=10)

        linked = add.apply_async((1, 2), link=record.s("after"), link_error=record.s("error"))
        assert linked.get(timeout=5) == 3
        (child,) = linked.children
        assert child.get(timeout=5) == [3, "after"]
        failing = boom.apply_async(link_error=record.s("error"))
        with pytest.raises(ValueError):
            failing.get(timeout=5)


def test_chord_needs_a_counting_backend(tasks: dict[str, Any]) -> None:
    app = TaskQ("nb", broker=f"memory://{uuid.uuid4().hex}", backend="none")

    @app.task(name="t.x")
    def x() -> None: ...

    with pytest.raises(ConfigurationError, match="a chord needs a result backend"):
        chord([x.s()], x.s()).apply_async()


def test_a_second_copy_of_a_step_does_not_run(app: TaskQ, tasks: dict[str, Any]) -> None:
    ran: list[int] = []

    @app.task(name="t.count")
    def count(value: int) -> int:
        ran.append(value)
        return value

    c = chain(tasks["add"].s(1, 1), count.s())
    result, pubs = c.prepare()
    first = parse(pubs[0].envelope, app.accepted)
    following = signature(first.embed["chain"][-1], app)  # type: ignore[index]
    with inline_worker(app):
        # a worker that died after sending the step but before acking sends it again
        for _ in range(2):
            _, (pub,) = following.prepare((2,), headers={"taskq_step": 1})
            app.broker.publish(pub.queue, pub.envelope)
        assert result.get(timeout=5) == 2
        app.broker.publish(pubs[0].queue, pubs[0].envelope)
        assert result.parent.get(timeout=5) == 2
    assert ran.count(2) == 1


def test_celerys_dicts_become_our_primitives_and_run(app: TaskQ, tasks: dict[str, Any]) -> None:
    def sig(name: str, *args: Any) -> dict[str, Any]:
        return {"task": name, "args": list(args), "kwargs": {}, "options": {}, "subtask_type": None, "immutable": False}

    # as Celery 5.7 serialises chain(...), group(...) and chord(...)
    as_chain = {"task": "celery.chain", "args": [], "kwargs": {"tasks": [sig("t.add", 1, 2), sig("t.add", 3)]},
                "options": {}, "subtask_type": "chain", "immutable": False}
    as_group = {"task": "celery.group", "args": [], "kwargs": {"tasks": [sig("t.add", 1, 1), sig("t.add", 2, 2)]},
                "options": {}, "subtask_type": "group", "immutable": False}
    as_chord = {"task": "celery.chord", "args": [], "options": {}, "subtask_type": "chord", "immutable": False,
                "kwargs": {"kwargs": {}, "header": [sig("t.add", 1, 1), sig("t.add", 2, 2)], "body": sig("t.tsum")}}
    parsed = [signature(d, app=app) for d in (as_chain, as_group, as_chord)]
    assert [type(p) for p in parsed] == [chain, group, chord]
    with inline_worker(app):
        assert [p.apply_async().get(timeout=10) for p in parsed] == [6, [2, 4], 6]


def test_sending_twice_draws_new_ids_and_leaves_the_signature_alone(app: TaskQ, tasks: dict[str, Any]) -> None:
    c = chain(tasks["add"].s(1, 2), tasks["add"].s(3))
    before = json.dumps(c, sort_keys=True)
    first, _ = c.prepare()
    second, _ = c.prepare()
    assert first.id != second.id and first.parent.id != second.parent.id
    assert json.dumps(c, sort_keys=True) == before
    frozen = c.freeze()  # frozen ids are kept by the send that follows
    again, _ = c.prepare()
    assert again.id == frozen.id


def test_clear_errors(app: TaskQ, tasks: dict[str, Any]) -> None:
    with pytest.raises(ConfigurationError, match="has no app"):
        signature("t.add").delay(1, 2)
    with pytest.raises(ConfigurationError, match="positive integer"):
        tasks["add"].chunks([(1, 2)], 0)
    with pytest.raises(ConfigurationError, match="empty chain"):
        chain(app=app).apply_async()
    with pytest.raises(ConfigurationError, match="not a signature"):
        signature({"args": []}, app=app)
    assert GroupResult.restore(uuid.uuid4().hex, app) is None


def test_chord_header_then_body_form(app: TaskQ, tasks: dict[str, Any]) -> None:
    with inline_worker(app):
        result = chord(tasks["add"].s(i, i) for i in range(3))(tasks["tsum"].s())
        assert result.get(timeout=10) == 6
        assert chord([], tasks["tsum"].s()).apply_async().get(timeout=10) == 0  # an empty header


def test_retried_header_tasks_and_chain_steps_keep_their_workflow(app: TaskQ, tasks: dict[str, Any]) -> None:
    attempts: dict[str, int] = {}

    @app.task(name="t.flaky", bind=True, max_retries=3)
    def flaky(self: Any, value: int) -> int:
        attempts[self.request.id] = attempts.get(self.request.id, 0) + 1
        if attempts[self.request.id] < 2:
            raise self.retry(countdown=0)
        return value

    with inline_worker(app):
        c = chord([flaky.s(1), flaky.s(2), tasks["add"].s(1, 2)], tasks["tsum"].s()).apply_async()
        assert c.get(timeout=10) == 6
        r = chain(tasks["add"].s(1, 1), flaky.s(), tasks["add"].s(10)).apply_async()
        assert r.get(timeout=10) == 12
    assert sorted(attempts.values()) == [2, 2, 2]


def test_options_and_errbacks_take_effect(app: TaskQ, tasks: dict[str, Any]) -> None:
    _, (pub,) = tasks["add"].s(1, 2).set(queue="elsewhere", priority=5, countdown=30).prepare()
    assert pub.queue == "elsewhere" and pub.envelope.priority == 5 and pub.eta is not None
    seen: list[Any] = []

    @app.task(name="t.note")
    def note(*args: Any) -> None:
        seen.append(args)

    with inline_worker(app):
        failing = tasks["boom"].apply_async(link_error=note.s("failed"))
        with pytest.raises(ValueError):
            failing.get(timeout=5)
        wait = __import__("tests.integration.workers", fromlist=["wait_until"]).wait_until
        wait(lambda: seen, 5, "the errback")
    assert seen == [(failing.id, "failed")]  # the failed task's id first, as Celery's task errbacks


def test_a_step_the_worker_cannot_send_fails_visibly(app: TaskQ, tasks: dict[str, Any]) -> None:
    # Given a chain whose next step carries an option no taskq worker knows (another producer's)
    odd = tasks["add"].s(1)
    odd.options["weird_option"] = True
    result, pubs = chain(tasks["add"].s(1, 1), odd).prepare()
    with inline_worker(app):
        app.broker.publish_many(pubs)
        # Then the step's result reports it instead of staying PENDING
        with pytest.raises(ConfigurationError, match="weird_option"):
            result.get(timeout=10)
