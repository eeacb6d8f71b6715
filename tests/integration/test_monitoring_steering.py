"""Steering a running worker (issue 17.2, 17.4): pool_grow/pool_shrink, rate_limit,
add_consumer/cancel_consumer and inspect reserved, through ``taskq control``/``taskq
inspect`` and through Celery's own client, on RabbitMQ and Redis. Each effect is observed
from outside the worker: its child processes, the order in which tasks start and finish
(marks the tasks write), the times at which a rate-limited task ran, which queue is read.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from taskq import TaskQ
from tests.integration.monitoring_fleet import Fleet, fleet
from tests.integration.workers import wait_until

pytestmark = [pytest.mark.slow]
TASK_SECONDS = 3.0  # each parallelism probe task sleeps this long
RATE = 2.0  # tasks per second once rate-limited


@pytest.fixture(params=["redis", "rabbitmq"])
def side(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Fleet]:
    with fleet(request.param, tmp_path) as f:
        yield f


@pytest.fixture
def sqlite_side(tmp_path: Path) -> Iterator[Fleet]:
    with fleet("sqlite", tmp_path) as f:
        yield f


# -- what the tests observe -------------------------------------------------------------------
def marks(side: Fleet) -> list[tuple[str, str, int]]:
    """(event, key, pid) per line the tasks wrote, in the order they wrote them."""
    path = side.tmp / "marks"
    if not path.exists():
        return []
    return [(e, k, int(p)) for e, k, p in (line.split() for line in path.read_text().splitlines())]


def children(pid: int) -> list[int]:
    """The live (not zombie) child processes of ``pid``."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", "rb") as stat:
                fields = stat.read().rsplit(b")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid and fields[0] != b"Z":
            found.append(int(entry))
    return found


def pool_children(pid: int, broker: str) -> int:
    """A prefork worker's pool children: its children, less its control process on SQLite and
    PostgreSQL (on Redis and RabbitMQ the supervisor serves remote control)."""
    return len(children(pid)) - (0 if broker.startswith(("redis", "amqp")) else 1)


def run_probe(side: Fleet, producer: TaskQ, label: str, count: int) -> list[tuple[str, str, int]]:
    """Send ``count`` sleeping tasks at once; their start/done marks once all are done."""
    keys = [f"{label}{i}" for i in range(count)]
    for key in keys:
        producer.send_task("example_tasks.sleep_then", (key, TASK_SECONDS), queue=f"q-{side.token}")
    wait_until(lambda: sum(1 for e, k, _ in marks(side) if e == "done" and k in keys) == count,
               TASK_SECONDS * count + 60, f"{count} probe tasks done")
    return [m for m in marks(side) if m[1] in keys]


def all_started_before_any_finished(probe: list[tuple[str, str, int]]) -> bool:
    events = [e for e, _, _ in probe]
    return events.index("done") == events.count("start")


def one_at_a_time(probe: list[tuple[str, str, int]]) -> bool:
    return [e for e, _, _ in probe] == ["start", "done"] * (len(probe) // 2)


def timed_runs(side: Fleet, producer: TaskQ, label: str, count: int, queue: str | None = None) -> list[float]:
    """Send ``count`` tasks that record when they ran; the times, sorted."""
    keys = {f"{label}{i}" for i in range(count)}
    for key in sorted(keys):
        producer.send_task("example_tasks.timed", (key,), queue=queue or f"q-{side.token}")
    wait_until(lambda: sum(1 for _, k, _ in marks(side) if k in keys) == count, 90, f"{count} timed tasks ran")
    return sorted(float(e.split("@", 1)[1]) for e, k, _ in marks(side) if k in keys)


def ran(side: Fleet, key: str) -> bool:
    return any(k == key for _, k, _ in marks(side))


def control(side: Fleet, *args: str) -> dict[str, Any]:
    out = side.taskq("control", *args, "-d", side.name("tq"), "--timeout", "10", "--json")
    assert out.returncode == 0, out.stdout + out.stderr
    reply: dict[str, Any] = json.loads(out.stdout)[side.name("tq")]
    return reply


def consumed_queues(side: Fleet) -> list[str]:
    out = side.taskq("inspect", "active_queues", "-d", side.name("tq"), "--timeout", "10", "--json")
    return [q["name"] for q in json.loads(out.stdout)[side.name("tq")]]


def consumers_switched(side: Fleet, queues: str, consumers: int) -> None:
    """Wait until each consumer applied a change of queues (it does so between fetches, a
    fetch waits up to a second)."""
    line = f"Consuming from {queues}\n"
    wait_until(lambda: side.log("tq.log").count(line) >= consumers, 30, f"{consumers} consumer(s) on {queues}")


def rate_applied(side: Fleet, rate: str, consumers: int) -> None:
    """Wait until each consumer applied a new rate of example_tasks.timed (between fetches)."""
    line = f"Rate limit of example_tasks.timed now {rate}\n"
    wait_until(lambda: side.log("tq.log").count(line) >= consumers, 30, f"{consumers} consumer(s) at {rate}")


def marked_worker(side: Fleet, *args: str, **env: str) -> int:
    proc = side.taskq_worker("tq", *args, TASKQ_TEST_MARKS=str(side.tmp / "marks"), **env)
    return proc.pid


# -- taskq control, prefork -----------------------------------------------------------------
def test_taskq_control_grows_and_shrinks_a_prefork_pool_and_rate_limits_every_child(side: Fleet) -> None:
    # Given a prefork worker of one child
    pid = marked_worker(side, "-c", "1", "--prefetch-multiplier", "1")
    assert pool_children(pid, side.broker) == 1
    producer = side.producer()
    try:
        # When taskq control grows it by 2
        assert control(side, "pool-grow", "2") == {"ok": "pool will grow"}
        # Then it runs three children, and three tasks run at once in three processes
        wait_until(lambda: pool_children(pid, side.broker) == 3, 30, "three pool children")
        probe = run_probe(side, producer, "grown", 3)
        assert all_started_before_any_finished(probe), probe
        assert len({p for _, _, p in probe}) == 3
        # And a task rate-limited to 2/s runs at that rate across the children (unlimited before)
        before = timed_runs(side, producer, "free", 8)
        assert before[-1] - before[0] < 7 / RATE * 0.6, before
        assert control(side, "rate-limit", "example_tasks.timed", f"{RATE:g}/s") == {
            "ok": "new rate limit set successfully"
        }
        rate_applied(side, f"{RATE:g}/s", 3)  # every child
        after = timed_runs(side, producer, "limited", 8)
        assert after[-1] - after[0] >= 7 / RATE * 0.85, after
        # And lifting it (rate 0, as Celery's) runs them at once again
        assert control(side, "rate-limit", "example_tasks.timed", "0") == {"ok": "rate limit disabled successfully"}
        rate_applied(side, "none", 3)
        lifted = timed_runs(side, producer, "lifted", 8)
        assert lifted[-1] - lifted[0] < 7 / RATE * 0.6, lifted
        # When it shrinks by 2, one child is left and two tasks run one after the other
        assert control(side, "pool-shrink", "2") == {"ok": "pool will shrink"}
        wait_until(lambda: pool_children(pid, side.broker) == 1, 60, "one pool child")
        assert one_at_a_time(run_probe(side, producer, "shrunk", 2))
        # And it keeps at least one; stats report the size it has
        assert "keeps at least 1" in control(side, "pool-shrink", "1")["error"]
        stats = json.loads(side.taskq("inspect", "stats", "-d", side.name("tq"), "--timeout", "10", "--json").stdout)
        assert stats[side.name("tq")]["pool"]["max-concurrency"] == 1
    finally:
        producer.close()


def test_taskq_control_adds_and_cancels_a_queue(side: Fleet) -> None:
    # Given a threads worker on one queue, and a task waiting on another
    marked_worker(side, "-P", "threads", "-c", "2")
    other = f"other-{side.token}"
    producer = side.producer()
    try:
        producer.send_task("example_tasks.timed", ("early",), queue=other)
        assert consumed_queues(side) == [f"q-{side.token}"]
        # When taskq control adds that queue
        assert control(side, "add-consumer", other) == {"ok": f"add consumer {other}"}
        # Then the waiting task runs, and inspect active_queues lists both
        wait_until(lambda: ran(side, "early"), 30, "the task on the added queue")
        assert consumed_queues(side) == [f"q-{side.token}", other]
        assert control(side, "add-consumer", other) == {"ok": f"already consuming from {other!r}"}
        # When it cancels it, a task sent there waits while one on the first queue runs
        assert control(side, "cancel-consumer", other) == {"ok": f"no longer consuming from {other}"}
        assert consumed_queues(side) == [f"q-{side.token}"]
        consumers_switched(side, f"q-{side.token}", 2)
        producer.send_task("example_tasks.timed", ("late",), queue=other)
        producer.send_task("example_tasks.timed", ("main",), queue=f"q-{side.token}")
        wait_until(lambda: ran(side, "main"), 30, "the task on the first queue")
        wait_until(lambda: producer.broker.queue_length(other) == 1, 10, "the cancelled queue's task waiting")
        assert not ran(side, "late")
        assert "last queue" in control(side, "cancel-consumer", f"q-{side.token}")["error"]
    finally:
        producer.close()


# -- Celery's own client, threads pool ------------------------------------------------------------
def test_celerys_client_steers_a_taskq_threads_worker(side: Fleet) -> None:
    pytest.importorskip("celery")
    from celery import Celery

    # Given a threads worker of one consumer, and Celery's client on the same broker
    marked_worker(side, "-P", "threads", "-c", "1", "--prefetch-multiplier", "1")
    name = side.name("tq")
    celery = Celery("client", broker=side.broker)
    producer = side.producer()
    other = f"other-{side.token}"
    try:
        def ask(command: str, *args: Any) -> Any:
            replies = getattr(celery.control, command)(*args, destination=[name], reply=True, timeout=10)
            return {k: v for reply in replies for k, v in reply.items()}[name]

        def resized(to: int, was: int) -> None:  # "pool will grow": the pool acts within a moment
            wait_until(lambda: f"Pool size now {to} (was {was})" in side.log("tq.log"), 30, f"pool size {to}")

        # When Celery grows the pool by 2, three tasks run at once
        assert ask("pool_grow", 2) == {"ok": "pool will grow"}
        resized(3, 1)
        assert all_started_before_any_finished(run_probe(side, producer, "grown", 3))
        # When it shrinks it by 2, two tasks run one after the other
        assert ask("pool_shrink", 2) == {"ok": "pool will shrink"}
        resized(1, 3)
        assert one_at_a_time(run_probe(side, producer, "shrunk", 2))
        # When it sets a rate limit of 2/s, the task runs at that rate
        assert ask("rate_limit", "example_tasks.timed", f"{RATE:g}/s") == {"ok": "new rate limit set successfully"}
        rate_applied(side, f"{RATE:g}/s", 1)
        after = timed_runs(side, producer, "limited", 6)
        assert after[-1] - after[0] >= 5 / RATE * 0.85, after
        assert ask("rate_limit", "example_tasks.nope", "1/s") == {"error": "unknown task"}
        assert ask("rate_limit", "example_tasks.timed", "0") == {"ok": "rate limit disabled successfully"}
        # When it adds a queue, a task waiting there runs; once cancelled, one sent there waits
        producer.send_task("example_tasks.timed", ("early",), queue=other)
        assert ask("add_consumer", other) == {"ok": f"add consumer {other}"}
        wait_until(lambda: ran(side, "early"), 30, "the task on the added queue")
        queues = celery.control.inspect(destination=[name], timeout=10).active_queues()[name]
        assert [q["name"] for q in queues] == [f"q-{side.token}", other]
        assert ask("cancel_consumer", other) == {"ok": f"no longer consuming from {other}"}
        consumers_switched(side, f"q-{side.token}", 1)
        producer.send_task("example_tasks.timed", ("late",), queue=other)
        producer.send_task("example_tasks.timed", ("main",), queue=f"q-{side.token}")
        wait_until(lambda: ran(side, "main"), 30, "the task on the first queue")
        assert not ran(side, "late")
    finally:
        producer.close()
        celery.close()


def test_a_solo_worker_says_why_it_cannot_resize(sqlite_side: Fleet) -> None:
    side = sqlite_side
    side.taskq_worker("tq", "-P", "solo")
    for command in ("pool-grow", "pool-shrink"):
        out = side.taskq("control", command, "1", "-d", side.name("tq"), "--timeout", "10")
        assert out.returncode == 0 and "ERROR" in out.stdout and "solo pool runs one task at a time" in out.stdout
    assert "solo" in control(side, "pool-grow", "1")["error"]


# -- inspect reserved / scheduled ---------------------------------------------------------------
@pytest.mark.parametrize("kind", ["redis", "sqlite"])
def test_inspect_reserved_lists_the_messages_held_behind_a_long_task(kind: str, tmp_path: Path) -> None:
    # RabbitMQ pushes messages into the channel as they come: how many one fetch takes from
    # there is a race, so the fixed "three held behind one" picture is asserted where a
    # fetch claims its batch at once.
    with fleet(kind, tmp_path) as side:
        producer = side.producer()
        try:
            queue = f"q-{side.token}"
            # Given a long task and three more waiting before a one-consumer worker starts
            long = producer.send_task("example_tasks.sleep_then", ("long", 20), queue=queue)  # outlasts slow asks
            held = [producer.send_task("example_tasks.add", (i, i), queue=queue).id for i in range(3)]
            later = producer.send_task("example_tasks.add", (9, 9), countdown=60, queue=queue)
            marked_worker(side, "-P", "threads", "-c", "1", "--prefetch-multiplier", "4",
                          TASKQ_WORKER_HOLD_LIMIT="60")
            name = side.name("tq")

            def ask(command: str) -> list[dict[str, Any]]:
                out = side.taskq("inspect", command, "-d", name, "--timeout", "10", "--json")
                return list(json.loads(out.stdout)[name])

            # When the long task runs, inspect reserved lists the three it claimed behind it
            wait_until(lambda: ran(side, "long"), 30, "the long task started")
            reserved = wait_until(lambda: (lambda r: r if len(r) == 3 else None)(ask("reserved")), 10, "3 reserved")
            assert [r["id"] for r in reserved] == held
            first = reserved[0]
            assert first["name"] == first["type"] == "example_tasks.add" and first["args"] == "(0, 0)"
            assert first["hostname"] == name and first["time_start"] is None and first["acknowledged"] is False
            assert first["delivery_info"]["routing_key"] == queue
            assert [a["id"] for a in ask("active")] == [long.id]
            if kind == "redis":  # Celery's own client reads the same list
                from celery import Celery

                celery = Celery("client", broker=side.broker)
                try:
                    seen = celery.control.inspect(destination=[name], timeout=10).reserved() or {}
                finally:
                    celery.close()
                assert [r["id"] for r in seen[name]] == held
            # And the countdown task waits on the broker, not in the worker: scheduled is empty
            assert later.id not in {r["id"] for r in reserved} and ask("scheduled") == []
            # Once they ran, nothing is reserved
            wait_until(lambda: ask("reserved") == [] and ran(side, "long") and any(
                e == "done" and k == "long" for e, k, _ in marks(side)), 60, "reserved empty after the run")
        finally:
            producer.close()
