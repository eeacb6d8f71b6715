"""Celery's own tools see taskq workers (issue 17.4), on RabbitMQ and on Redis.

The real ``celery`` CLI lists a taskq worker beside a Celery worker (inspect ping, active);
Celery's ``app.events.Receiver`` (Flower's) receives the taskq worker's worker-heartbeat
and task-succeeded with every field Flower reads; Flower itself lists the taskq worker and
its finished task in its HTTP API.
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from taskq import TaskQ
from tests.integration.monitoring_fleet import Fleet, fleet
from tests.integration.workers import wait_until
from tests.servers import free_port

celery = pytest.importorskip("celery")
pytestmark = [pytest.mark.slow, pytest.mark.rabbitmq, pytest.mark.redis]
# What Flower's state (celery.events.state) and views read from each event.
WORKER_FIELDS = {"hostname", "timestamp", "utcoffset", "pid", "clock", "freq", "active", "processed", "loadavg",
                 "sw_ident", "sw_ver", "sw_sys"}
TASK_FIELDS = {"uuid", "hostname", "timestamp", "utcoffset", "pid", "clock"}


@pytest.fixture(params=["redis", "rabbitmq"])
def side(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Fleet]:
    with fleet(request.param, tmp_path) as f:
        yield f


def celery_app(side: Fleet) -> Any:
    from celery import Celery

    return Celery("client", broker=side.broker)


def test_celery_inspect_lists_a_taskq_worker_beside_a_celery_worker(side: Fleet) -> None:
    # Given a taskq worker (prefork) and a Celery worker on one broker
    side.taskq_worker("tq", "-c", "2")
    side.celery_worker("cel")
    # When the real celery CLI pings
    ping = side.run(sys.executable, "-m", "celery", "-A", "cproj", "inspect", "ping", "--timeout", "5")
    # Then both answer pong
    assert ping.returncode == 0, ping.stdout + ping.stderr
    assert f"{side.name('tq')}: OK" in ping.stdout and f"{side.name('cel')}: OK" in ping.stdout
    assert ping.stdout.count("pong") >= 2
    # And a running taskq task shows in celery inspect active, with Celery's request fields
    producer = TaskQ("producer", broker=side.broker)
    producer.conf.broker_transport_options = json.loads(side.env().get("TASKQ_BROKER_TRANSPORT_OPTIONS", "{}"))
    try:
        sent = producer.send_task("example_tasks.sleep_then", ("active-key", 6), queue=f"q-{side.token}")
        app = celery_app(side)
        try:
            def running() -> dict[str, Any] | None:
                replies = app.control.inspect(destination=[side.name("tq")], timeout=2).active() or {}
                found = [r for r in replies.get(side.name("tq"), []) if r["id"] == sent.id]
                return found[0] if found else None

            request = wait_until(running, 30, "the task in celery's inspect active")
        finally:
            app.close()
        assert request["name"] == "example_tasks.sleep_then"
        assert request["hostname"] == side.name("tq")
        assert "active-key" in request["args"] and isinstance(request["time_start"], float)
        active = side.run(sys.executable, "-m", "celery", "-A", "cproj", "inspect", "active", "--timeout", "5")
        assert sent.id in active.stdout and side.name("cel") in active.stdout, active.stdout
    finally:
        producer.close()


def test_celery_receiver_gets_a_taskq_worker_s_heartbeat_and_task_succeeded(side: Fleet) -> None:
    app = celery_app(side)
    seen: list[dict[str, Any]] = []
    done = threading.Event()

    def on_event(event: dict[str, Any]) -> None:
        if event.get("hostname") == side.name("tq"):
            seen.append(event)
            kinds = {e["type"] for e in seen}
            if {"worker-heartbeat", "task-succeeded", "task-received", "task-started"} <= kinds:
                done.set()

    # Given Celery's event Receiver, the one Flower uses, listening before the worker starts
    conn = app.connection_for_read()
    receiver = app.events.Receiver(conn, handlers={"*": on_event})
    consumer = threading.Thread(target=lambda: receiver.capture(limit=None, timeout=60, wakeup=False), daemon=True)
    consumer.start()
    try:
        time.sleep(1.0)  # the receiver's queue is bound in its own thread
        # When a taskq worker with -E runs a task
        side.taskq_worker("tq", "-P", "threads", "-c", "2", "-E")
        producer = TaskQ("producer", broker=side.broker)
        producer.conf.broker_transport_options = json.loads(side.env().get("TASKQ_BROKER_TRANSPORT_OPTIONS", "{}"))
        try:
            sent = producer.send_task("example_tasks.add", (2, 3), queue=f"q-{side.token}")
            # Then heartbeat and task events arrive with every field Flower reads
            assert done.wait(30), [e["type"] for e in seen]
        finally:
            producer.close()
    finally:
        receiver.should_stop = True
        consumer.join(10)
        conn.release()
        app.close()
    beat = next(e for e in seen if e["type"] == "worker-heartbeat")
    assert WORKER_FIELDS <= beat.keys(), WORKER_FIELDS - beat.keys()
    assert isinstance(beat["freq"], float) and isinstance(beat["active"], int) and isinstance(beat["clock"], int)
    assert beat["processed"] >= 0 and len(beat["loadavg"]) == 3
    succeeded = next(e for e in seen if e["type"] == "task-succeeded")
    assert TASK_FIELDS | {"result", "runtime"} <= succeeded.keys()
    assert succeeded["uuid"] == sent.id and succeeded["result"] == "5" and isinstance(succeeded["runtime"], float)
    received = next(e for e in seen if e["type"] == "task-received")
    assert {"name", "args", "kwargs", "retries", "eta", "expires", "root_id", "parent_id"} <= received.keys()
    assert received["name"] == "example_tasks.add" and received["args"] == "(2, 3)"
    clocks = [e["clock"] for e in seen if e["pid"] == succeeded["pid"]]
    assert clocks == sorted(clocks) and len(set(clocks)) == len(clocks)  # Lamport: strictly rising per sender


def test_flower_lists_a_taskq_worker_and_its_finished_task(side: Fleet) -> None:
    pytest.importorskip("flower")
    port = free_port()
    # Given Flower on the broker, then a taskq worker with -E that runs a task
    flower = side.start(
        [sys.executable, "-m", "celery", "-A", "cproj", "flower", f"--port={port}", "--address=127.0.0.1",
         "--inspect_timeout=3000"],
        "flower.log", FLOWER_UNAUTHENTICATED_API="1",
    )
    base = f"http://127.0.0.1:{port}"
    wait_until(lambda: _get(base + "/healthcheck") is not None or flower.poll() is not None, 60, "flower start")
    assert flower.poll() is None, side.log("flower.log")
    time.sleep(1.0)  # Flower's event receiver binds after its HTTP server
    side.taskq_worker("tq", "-P", "threads", "-c", "1", "-E")
    producer = TaskQ("producer", broker=side.broker)
    producer.conf.broker_transport_options = json.loads(side.env().get("TASKQ_BROKER_TRANSPORT_OPTIONS", "{}"))
    try:
        sent = producer.send_task("example_tasks.add", (4, 5), queue=f"q-{side.token}")
        # Then /api/tasks shows it SUCCESS on the taskq worker, and /api/workers lists the worker
        def task() -> dict[str, Any] | None:
            tasks = _get(base + "/api/tasks") or {}
            found = tasks.get(sent.id)
            return found if found and found.get("state") == "SUCCESS" else None

        found = wait_until(task, 30, "the task in Flower")
        assert found["worker"] == side.name("tq") and found["name"] == "example_tasks.add"
        assert found["result"] == "9"
        workers = wait_until(
            lambda: (_get(base + "/api/workers?refresh=1") or {}).get(side.name("tq")), 30, "the worker in Flower"
        )
        assert workers["stats"]["pool"]["max-concurrency"] == 1
        assert any(q["name"] == f"q-{side.token}" for q in workers["active_queues"])
        assert "example_tasks.add" in workers["registered"]
    finally:
        producer.close()


def _get(url: str) -> Any:
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            body = response.read()
    except (OSError, subprocess.SubprocessError):
        return None
    try:
        return json.loads(body)
    except ValueError:
        return body.decode(errors="replace")
