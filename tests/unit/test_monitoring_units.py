"""The monitoring pieces alone: signals through the real task runner, node names, control
request parsing and signing, the shared statistics across a fork, and events on the
in-process bus."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from typing import Any

import pytest

from taskq import TaskQ, signals
from taskq.control import signing
from taskq.control.mailbox import ControlRequest, parse_request
from taskq.control.nodename import nodename
from taskq.control.stats import SharedStats
from taskq.events.dispatcher import EventDispatcher
from taskq.events.memory_bus import MemoryEventBus
from taskq.events.receiver import EventReceiver
from taskq.events.task_events import TaskEvents
from taskq.worker.runner import TaskRunner


@pytest.fixture
def app() -> Iterator[TaskQ]:
    app = TaskQ("sig", broker="memory://", backend="memory://", task_default_retry_delay=0)

    @app.task
    def ok(x: int) -> int:
        return x * 2

    @app.task
    def boom() -> None:
        raise ValueError("boom")

    @app.task(bind=True, max_retries=1)
    def again(self: Any) -> None:
        self.retry(exc=KeyError("again"), countdown=0)

    yield app
    app.close()


@pytest.fixture
def heard() -> Iterator[list[tuple[str, dict[str, Any]]]]:
    calls: list[tuple[str, dict[str, Any]]] = []
    hooks = [getattr(signals, n) for n in signals.__all__ if n != "Signal"]
    receivers = []
    for sig in hooks:
        def receiver(signal: signals.Signal, sender: Any = None, **kw: Any) -> None:
            calls.append((signal.name, {"sender": sender, **kw}))

        sig.connect(receiver)
        receivers.append((sig, receiver))
    yield calls
    for sig, receiver in receivers:
        sig.disconnect(receiver)


def run_all(app: TaskQ) -> None:
    runner = TaskRunner(app, app.broker)
    while batch := app.broker.fetch([app.conf.task_default_queue], 10, 0.05):
        for delivery in batch:
            runner.handle(delivery)
        runner.flush()


def names(calls: list[tuple[str, dict[str, Any]]]) -> list[str]:
    return [n for n, _ in calls]


def test_task_signals_fire_with_celery_s_arguments(app: TaskQ, heard: list[tuple[str, dict[str, Any]]]) -> None:
    sent = app.send_task("tests.unit.test_monitoring_units.ok", (21,))
    run_all(app)
    assert names(heard) == [
        "before_task_publish", "after_task_publish", "task_received", "task_prerun", "task_success", "task_postrun",
    ]
    by = dict(heard)
    assert by["before_task_publish"]["sender"] == "tests.unit.test_monitoring_units.ok"
    assert by["before_task_publish"]["headers"]["id"] == sent.id
    assert by["before_task_publish"]["routing_key"] == "celery"
    assert by["task_prerun"]["task_id"] == sent.id and by["task_prerun"]["args"] == [21]
    assert by["task_success"]["result"] == 42 and by["task_success"]["sender"].name.endswith(".ok")
    assert by["task_postrun"]["retval"] == 42 and by["task_postrun"]["state"] == "SUCCESS"


def test_failure_and_retry_signals(app: TaskQ, heard: list[tuple[str, dict[str, Any]]]) -> None:
    failed = app.send_task("tests.unit.test_monitoring_units.boom")
    run_all(app)
    by = dict(heard)
    assert by["task_failure"]["task_id"] == failed.id and isinstance(by["task_failure"]["exception"], ValueError)
    assert "ValueError: boom" in by["task_failure"]["einfo"] and by["task_postrun"]["state"] == "FAILURE"
    heard.clear()
    app.send_task("tests.unit.test_monitoring_units.again")
    run_all(app)
    assert names(heard).count("task_retry") == 1  # the first run retries, the second exhausts
    retry = dict(heard)["task_retry"]
    assert isinstance(retry["reason"], KeyError)
    assert [kw["state"] for n, kw in heard if n == "task_postrun"] == ["RETRY", "FAILURE"]


def test_a_failing_receiver_is_logged_and_the_task_still_runs(app: TaskQ, caplog: pytest.LogCaptureFixture) -> None:
    def broken(**_: Any) -> None:
        raise RuntimeError("receiver bug")

    signals.task_prerun.connect(broken)
    try:
        result = app.send_task("tests.unit.test_monitoring_units.ok", (1,))
        run_all(app)
    finally:
        signals.task_prerun.disconnect(broken)
    assert result.get(timeout=1) == 2
    assert "receiver bug" in caplog.text


def test_connect_by_sender_and_as_decorator() -> None:
    sig = signals.Signal("demo")
    got: list[Any] = []

    @sig.connect(sender="a.task")
    def only_a(sender: Any, **_: Any) -> None:
        got.append(sender)

    sig.send(sender="b.task")
    sig.send(sender="a.task")
    assert got == ["a.task"]
    assert sig.disconnect(only_a, sender="a.task") and not sig.receivers


@pytest.mark.parametrize(
    ("template", "expected"),
    [
        (None, "taskq@web1.example.com"),
        ("w1@%h", "w1@web1.example.com"),
        ("w1@%n", "w1@web1"),
        ("%n.%d", "taskq@web1.example.com"),
        ("x", "taskq@x"),
        ("a%%b@%n", "a%b@web1"),
    ],
)
def test_node_names_expand_as_celery_s(template: str | None, expected: str) -> None:
    assert nodename(template, host="web1.example.com") == expected


def test_parse_request_refuses_malformed_bodies() -> None:
    ok = parse_request(
        {"method": "ping", "arguments": {}, "destination": ["a@b"], "ticket": "t",
         "reply_to": {"exchange": "reply.celery.pidbox", "routing_key": "r"}},
        {"clock": 3, "expires": time.time() + 5},
    )
    assert isinstance(ok, ControlRequest) and ok.for_node("a@b") and not ok.for_node("c@d")
    for body, headers in [
        ([1, 2], {}),
        ({"method": 5}, {}),
        ({"method": "ping", "arguments": []}, {}),
        ({"method": "ping", "destination": "a@b"}, {}),
        ({"method": "ping", "reply_to": "x"}, {}),
        ({"method": "ping"}, {"expires": "soon"}),
    ]:
        assert isinstance(parse_request(body, headers), str), body
    expired = parse_request({"method": "ping"}, {"expires": time.time() - 1})
    assert isinstance(expired, ControlRequest) and not expired.for_node("a@b")


def test_control_signatures() -> None:
    signed = signing.sign("k", "rate_limit", {"task_name": "t", "rate_limit": "1/s"}, ["a@b"])
    args, why = signing.verify("k", 60, "rate_limit", signed, ["a@b"])
    assert args == {"task_name": "t", "rate_limit": "1/s"} and why == ""
    assert signing.verify("other", 60, "rate_limit", signed, ["a@b"])[1] == "bad signature"
    assert signing.verify("k", 60, "rate_limit", signed, ["c@d"])[1] == "bad signature"  # retargeted
    assert signing.verify("k", 60, "shutdown", signed, ["a@b"])[1] == "bad signature"
    assert signing.verify("k", 60, "ping", {}, None)[1] == "unsigned"
    old = signing.sign("k", "ping", {}, None)
    old[signing.SIGNED_AT] -= 120
    old[signing.SIGNATURE] = signing._digest("k", "ping", {k: v for k, v in old.items() if k != "taskq_signature"},
                                             None)
    assert signing.verify("k", 60, "ping", old, None)[1] == "signature too old or from the future"


def test_shared_stats_add_up_across_forked_children() -> None:
    stats = SharedStats(4)
    try:
        pids = []
        for n in range(3):
            pid = os.fork()
            if pid == 0:
                for i in range(n + 1):
                    stats.task_started(f"t{n}-{i}", "x", "()", "{}", "q", "0")
                    stats.task_finished()
                stats.task_started(f"running-{n}", "x", "(1,)", "{}", "q", "5")
                time.sleep(30)
                os._exit(0)
            pids.append(pid)
        deadline = time.monotonic() + 10
        while stats.processed() < 6 or len(stats.active()) < 3:
            assert time.monotonic() < deadline, (stats.processed(), stats.active())
            time.sleep(0.02)
        active = sorted(stats.active(), key=lambda a: a["id"])
        assert [a["id"] for a in active] == ["running-0", "running-1", "running-2"]
        assert {a["worker_pid"] for a in active} == set(pids)  # each child's own pid, not the parent's
        assert active[0]["args"] == "(1,)" and active[0]["priority"] == 5 and active[0]["time_start"] > 0
        # A dead child's running task is no longer active; its count stays in the total
        os.kill(pids[0], 9)
        os.waitpid(pids[0], 0)
        assert sorted(a["id"] for a in stats.active()) == ["running-1", "running-2"]
        stats.task_started("parent", "x", "()", "{}", "q", "0")  # reuses the dead child's record
        assert stats.processed() == 6
    finally:
        for pid in pids[1:]:
            os.kill(pid, 9)
            os.waitpid(pid, 0)


def test_task_events_have_celery_s_fields_and_a_rising_clock(app: TaskQ) -> None:
    dispatcher = EventDispatcher(app.conf, "w@h")
    dispatcher._bus, dispatcher._pid = MemoryEventBus(), os.getpid()
    receiver = EventReceiver(MemoryEventBus())
    events = TaskEvents(dispatcher)
    events.install()
    try:
        sent = app.send_task("tests.unit.test_monitoring_units.ok", (2,))
        run_all(app)
    finally:
        events.uninstall()
    got = list(receiver.itercapture(limit=3, timeout=2))
    assert [e["type"] for e in got] == ["task-received", "task-started", "task-succeeded"]
    assert all(e["uuid"] == sent.id and e["hostname"] == "w@h" and e["pid"] == os.getpid() for e in got)
    assert [e["clock"] for e in got] == [1, 2, 3]
    assert got[0]["args"] == "(2,)" and got[0]["name"].endswith(".ok") and got[0]["root_id"] == sent.id
    assert got[2]["result"] == "4" and isinstance(got[2]["runtime"], float)
    assert isinstance(got[0]["utcoffset"], float) and isinstance(got[0]["timestamp"], float)
    receiver.close()


def test_amqps_side_channels_take_pika_s_ssl_options() -> None:
    import ssl
    from urllib.parse import urlencode

    from taskq.sidechannel import kombu_ssl, kombu_url

    query = urlencode({"ssl_options": repr({"ca_certs": "/ca.pem", "password": "x"}), "heartbeat": "5"})
    url, options = kombu_ssl(kombu_url(f"amqps://u:p@host:5671/vh?{query}"))
    assert url == "amqps://u:p@host:5671/vh?heartbeat=5"
    assert options == {"ca_certs": "/ca.pem", "cert_reqs": ssl.CERT_REQUIRED}  # the password stays out
    assert kombu_ssl("amqps://h//") == ("amqps://h//", True)
    assert kombu_ssl(kombu_url("kombu+redis://h:6379/3")) == ("redis://h:6379/3", False)


def test_the_node_name_comes_from_dash_n_else_the_variable_both_expanded(monkeypatch: pytest.MonkeyPatch) -> None:
    import socket

    from taskq.cli.worker import prepare_node

    monkeypatch.setenv("TASKQ_WORKER_HOSTNAME", "env@%h")
    from_env = TaskQ("n", broker="memory://")
    prepare_node(from_env, None, False)
    assert from_env.conf.worker_hostname == f"env@{socket.gethostname()}"
    from_flag = TaskQ("n", broker="memory://")
    prepare_node(from_flag, "flag@%n", True)
    assert from_flag.conf.worker_hostname == f"flag@{socket.gethostname().partition('.')[0]}"
    assert from_flag.conf.worker_send_task_events
