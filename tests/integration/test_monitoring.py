"""Named workers, inspect/control and events on taskq's own CLI and API (issue 17.1-3), with
real worker processes on SQLite, PostgreSQL, Redis and RabbitMQ."""

from __future__ import annotations

import json
import signal
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from taskq import TaskQ
from taskq.control.client import Control
from tests.integration.monitoring_fleet import Fleet, fleet
from tests.integration.workers import wait_until

pytestmark = [pytest.mark.slow]


@pytest.fixture(params=["sqlite", "postgresql", "redis", "rabbitmq"])
def side(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Fleet]:
    with fleet(request.param, tmp_path) as f:
        yield f


class AnyText(str):
    """Equal to any text that contains it (a reply's wording may go on)."""

    def __eq__(self, other: object) -> bool:
        return isinstance(other, str) and str(self) in other

    __hash__ = str.__hash__


def test_inspect_answers_from_a_named_worker_and_control_shuts_it_down(side: Fleet) -> None:
    # Given a prefork worker named with Celery's %h expansion
    worker = side.taskq_worker("tq", "-c", "2")
    name = side.name("tq")
    # When each inspect command is asked for that worker
    ping = side.taskq("inspect", "ping", "-d", name, "--timeout", "5", "--json")
    registered = side.taskq("inspect", "registered", "--timeout", "5", "--json", "-d", name)
    stats = side.taskq("inspect", "stats", "--timeout", "5", "--json", "-d", name)
    queues = side.taskq("inspect", "active_queues", "--timeout", "5", "--json", "-d", name)
    # Then it answers each in Celery's shape
    assert ping.returncode == 0 and json.loads(ping.stdout) == {name: {"ok": "pong"}}, ping.stderr
    assert "example_tasks.add" in json.loads(registered.stdout)[name]
    pool = json.loads(stats.stdout)[name]["pool"]
    assert pool["max-concurrency"] == 2 and pool["implementation"].endswith("prefork")
    assert [q["name"] for q in json.loads(queues.stdout)[name]] == [f"q-{side.token}"]
    # And a revoke broadcast as Celery's control sends it is stored, and inspect revoked lists it
    gone = f"gone-{side.token}"
    asker = side.producer()
    try:
        replies = Control(asker).broadcast("revoke", {"task_id": gone}, destination=[name], reply=True, timeout=5)
        kept = asker.control.revocations.available  # a server keeps them: not RabbitMQ without a backend
        if kept:
            assert replies == [{name: {"ok": f"tasks {gone} flagged as revoked"}}]
            assert asker.control.revocations.is_revoked(gone)
        else:
            assert replies == [{name: {"error": AnyText("revoke needs")}}]
    finally:
        asker.close()
    revoked = side.taskq("inspect", "revoked", "--timeout", "5", "--json", "-d", name)
    assert (gone in json.loads(revoked.stdout)[name]) == kept, revoked.stderr
    # And a running task shows in inspect active (through the app API as well)
    producer = side.producer()
    try:
        sent = producer.send_task("example_tasks.sleep_then", ("k", 30), queue=f"q-{side.token}")
        control = Control(producer)

        def running() -> list[dict[str, Any]]:
            replies = control.inspect(destination=[name], timeout=3).active() or {}
            return [r for r in replies.get(name, []) if r["id"] == sent.id]

        assert wait_until(running, 30, "the running task")[0]["name"] == "example_tasks.sleep_then"
        control.close()
        # When asked to shut down
        shut = side.taskq("control", "shutdown", "-d", name, "--timeout", "5")
        assert shut.returncode == 0 and "shutting down" in shut.stdout, shut.stdout + shut.stderr
        worker.send_signal(signal.SIGTERM)  # the second signal: cold, the sleeping task goes back
        assert worker.wait(60) is not None
    finally:
        producer.close()
    # Then nobody answers any more: exit 1 without -d
    gone = side.taskq("inspect", "ping", "--timeout", "1.5")
    assert gone.returncode == 1 and "no worker answered" in gone.stderr


def test_two_workers_with_one_name_the_second_exits_2(side: Fleet) -> None:
    first = side.taskq_worker("dup", "-P", "solo")
    second = side.run(
        sys.executable, "-m", "taskq", "worker", "-A", "example_tasks:app", "-n", side.name("dup"), "-P", "solo",
        "-Q", f"q-{side.token}",
    )
    assert second.returncode == 2
    lines = second.stderr.strip().splitlines()
    assert lines[-1] == f"taskq: error: a worker named {side.name('dup')} is already running " \
        "(give this one another name with -n)"
    assert "Traceback" not in second.stderr
    # And a worker killed with SIGKILL gives its name back at once: a restart takes it
    first.kill()
    first.wait(10)
    again = side.taskq_worker("dup", "-P", "solo")
    wait_until(lambda: side.log("dup.log").count("ready:") == 2 or again.poll() is not None, 30, "the restart")
    assert again.poll() is None, side.log("dup.log")
    assert side.taskq("inspect", "ping", "-d", side.name("dup"), "--timeout", "5").returncode == 0


def test_bad_inspect_input_is_one_line_exit_2(side: Fleet) -> None:
    side.taskq_worker("tq", "-P", "solo")
    cases = {
        ("inspect", "nonsense"): "unknown inspect command 'nonsense'",
        ("inspect", "ping", "--timeout", "soon"): "--timeout 'soon' is not a number",
        ("inspect", "ping", "-d", "ghost@nowhere", "--timeout", "1"): "unknown worker name(s) ghost@nowhere",
        ("control", "pool-grow", "many"): "N must be a positive whole number",
        ("control", "explode"): "unknown control command 'explode'",
    }
    for args, message in cases.items():
        out = side.taskq(*args)
        assert out.returncode == 2, (args, out.stdout, out.stderr)
        assert out.stderr.count("\n") == 1 and message in out.stderr, (args, out.stderr)
    # And a named worker that does not answer beside one that does is named on stderr, exit 0
    mixed = side.taskq("inspect", "ping", "-d", f"{side.name('tq')},ghost@nowhere", "--timeout", "2")
    assert mixed.returncode == 0 and "ghost@nowhere: no reply" in mixed.stderr and "pong" in mixed.stdout


def test_events_tail_and_app_events_with_dash_e(side: Fleet) -> None:
    # Given a consumer of app.events and a `taskq events --json` tail, both listening first
    producer = side.producer()
    seen: list[dict[str, Any]] = []
    receiver = producer.events.Receiver(handlers={"*": seen.append})
    tail = side.start(
        [sys.executable, "-m", "taskq", "events", "-A", "example_tasks:app", "--json", "--duration", "40"],
        "events.log",
    )
    captured = threading.Thread(target=lambda: receiver.capture(timeout=40), daemon=True)
    captured.start()
    try:
        # When a -E worker runs a task that succeeds and one that fails
        side.taskq_worker("ev", "-P", "threads", "-c", "2", "-E")
        tailed = lambda: [json.loads(line) for line in side.log("events.log").splitlines() if line.startswith("{")]  # noqa: E731
        # (the tail subscribes in its own process: once it shows a heartbeat it sees what follows)
        wait_until(lambda: any(e["type"] == "worker-heartbeat" for e in tailed()), 30, "the tail listening")
        ok = producer.send_task("example_tasks.add", (1, 2), queue=f"q-{side.token}")
        bad = producer.send_task("example_tasks.add", (1, "x"), queue=f"q-{side.token}")

        def types(events: list[dict[str, Any]]) -> set[str]:
            return {e["type"] for e in events if e.get("hostname") == side.name("ev")}

        wanted = {"worker-online", "worker-heartbeat", "task-received", "task-started", "task-succeeded",
                  "task-failed"}
        wait_until(lambda: wanted <= types(seen), 30, f"events in app.events (saw {types(seen)})")
        wait_until(lambda: wanted - {"worker-online"} <= types(tailed()), 30, "events in taskq events")
    finally:
        receiver.should_stop = True
        captured.join(5)
        receiver.close()
        producer.close()
        tail.terminate()
    by_type = {e["type"]: e for e in seen if e.get("hostname") == side.name("ev")}
    assert by_type["task-succeeded"]["uuid"] == ok.id and by_type["task-succeeded"]["result"] == "3"
    assert by_type["task-failed"]["uuid"] == bad.id and "TypeError" in by_type["task-failed"]["exception"]
    assert "Traceback" in by_type["task-failed"]["traceback"]
    for event in by_type.values():
        assert {"hostname", "timestamp", "utcoffset", "pid", "clock"} <= event.keys()


def test_without_dash_e_only_worker_events(side: Fleet) -> None:
    producer = side.producer()
    seen: list[dict[str, Any]] = []
    receiver = producer.events.Receiver(handlers={"*": seen.append})
    try:
        side.taskq_worker("quiet", "-P", "solo")
        producer.send_task("example_tasks.add", (1, 2), queue=f"q-{side.token}")
        # Given a heartbeat that counts the task, no task-* event came
        def beats() -> list[dict[str, Any]]:
            return [e for e in seen if e["type"] == "worker-heartbeat" and e.get("processed")]

        receiver_thread = threading.Thread(target=lambda: receiver.capture(timeout=20), daemon=True)
        receiver_thread.start()
        wait_until(beats, 20, "a heartbeat counting the processed task")
        receiver.should_stop = True
        receiver_thread.join(5)
    finally:
        receiver.close()
        producer.close()
    assert not [e for e in seen if e["type"].startswith("task-")]
    assert beats()[0]["processed"] == 1 and beats()[0]["hostname"] == side.name("quiet")


def test_malformed_and_forged_control_messages_are_dropped(side: Fleet) -> None:
    # Given a worker with signing on
    side.taskq_worker("signed", "-P", "solo", TASKQ_SIGNING_KEY="right-key")
    name = side.name("signed")
    # (a signed ping first: on Redis pub/sub a message sent before the node subscribed is lost)
    first = side.taskq("inspect", "ping", "-d", name, "--timeout", "5", TASKQ_SIGNING_KEY="right-key")
    assert first.returncode == 0, first.stderr
    # When a malformed message arrives, then an unsigned ping and one signed with another key
    _send_malformed(side)
    unsigned = side.taskq("inspect", "ping", "-d", name, "--timeout", "1.5")
    forged = side.taskq("inspect", "ping", "-d", name, "--timeout", "1.5", TASKQ_SIGNING_KEY="wrong-key")
    signed = side.taskq("inspect", "ping", "-d", name, "--timeout", "5", TASKQ_SIGNING_KEY="right-key")
    # Then only the rightly signed one is answered, and each drop is logged
    assert unsigned.returncode == 2 and forged.returncode == 2
    assert signed.returncode == 0 and "pong" in signed.stdout, signed.stderr
    wait_until(lambda: "Dropped a malformed control message" in side.log("signed.log"), 10, "the malformed line")
    log = side.log("signed.log")
    assert "Dropped a control message 'ping': unsigned" in log
    assert "Dropped a control message 'ping': bad signature" in log


def _send_malformed(side: Fleet) -> None:
    if side.broker.startswith("sqlite"):
        import sqlite3

        conn = sqlite3.connect(side.broker.split("///", 1)[1])
        conn.execute("INSERT INTO taskq_pidbox (created, headers, body) VALUES (0, '{}', '[1, 2]')")
        conn.commit()
        conn.close()
        return
    if side.broker.startswith("postgresql"):
        import psycopg

        from taskq.brokers.postgres.connection import split_url

        conninfo, schema = split_url(side.broker)
        with psycopg.connect(conninfo, autocommit=True) as pg:
            pg.execute(f'INSERT INTO "{schema}".pidbox (headers, body) VALUES (%s, %s)', ("{}", "[1, 2]"))
        return
    from kombu import Connection, Producer

    from taskq.control.kombu_mailbox import celery_mailbox

    with Connection(side.broker) as conn:
        box = celery_mailbox()
        Producer(conn.default_channel).publish(
            [1, 2], exchange=box.exchange.name, declare=[box.exchange], serializer="json"
        )


def test_memory_app_control_in_one_process() -> None:
    """memory:// (threads or solo in one process): the same API through in-process queues."""
    from taskq.control.mailbox import create_mailbox

    app = TaskQ("mem", broker="memory://")
    node = create_mailbox(app.conf).node("mem@here")
    try:
        answered = threading.Thread(
            target=lambda: [node.reply(r, "mem@here", {"ok": "pong"}) for r in node.poll(5) if not isinstance(r, str)]
        )
        answered.start()
        assert app.control.ping(timeout=5) == [{"mem@here": {"ok": "pong"}}]
        answered.join()
    finally:
        node.close()
