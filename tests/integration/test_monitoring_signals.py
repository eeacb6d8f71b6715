"""Celery-named in-process hooks fire in real worker processes (issue 17.5), on SQLite,
PostgreSQL, Redis and RabbitMQ: worker_process_init in each prefork child, worker_ready and
worker_shutdown in the worker, beat_init in the embedded beat, and the task signals in the child that ran
the task."""

from __future__ import annotations

import json
import signal
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.monitoring_fleet import Fleet, fleet
from tests.integration.workers import wait_until

pytestmark = [pytest.mark.slow]
PROJECT = """
import json
import os

from taskq import TaskQ
from taskq.signals import (
    beat_init, task_failure, task_postrun, task_prerun, task_success, worker_process_init, worker_ready,
    worker_shutdown,
)

app = TaskQ("sigproj")


def note(name, **fields):
    with open(os.environ["SIG_OUT"], "a") as out:
        out.write(json.dumps({"signal": name, "pid": os.getpid(), **fields}) + "\\n")


@worker_process_init.connect
def on_init(**_):
    note("worker_process_init")


@worker_ready.connect
def on_ready(sender=None, **_):
    note("worker_ready", sender=sender)


@worker_shutdown.connect
def on_shutdown(**_):
    note("worker_shutdown")


@beat_init.connect
def on_beat(sender=None, **_):
    note("beat_init")


@task_prerun.connect
def on_prerun(task_id=None, task=None, args=None, **_):
    note("task_prerun", task_id=task_id, task_name=task.name, args=list(args))


@task_postrun.connect
def on_postrun(task_id=None, state=None, retval=None, **_):
    note("task_postrun", task_id=task_id, state=state)


@task_success.connect(sender="sigproj.double")
def on_success(result=None, **_):
    note("task_success", result=result)


@task_failure.connect
def on_failure(task_id=None, exception=None, **_):
    note("task_failure", task_id=task_id, exception=type(exception).__name__)


@app.task
def double(x):
    return x * 2


@app.task
def fail():
    raise ValueError("no")
"""


@pytest.fixture(params=["sqlite", "postgresql", "redis", "rabbitmq"])
def side(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Fleet]:
    with fleet(request.param, tmp_path) as f:
        (tmp_path / "cproj" / "sigproj.py").write_text(textwrap.dedent(PROJECT))
        yield f


def test_worker_and_task_signals_fire_in_the_worker_processes(side: Fleet) -> None:
    out = side.tmp / "signals.jsonl"

    def notes() -> list[dict[str, object]]:
        return [json.loads(line) for line in out.read_text().splitlines()] if out.exists() else []

    # Given a prefork worker of two children with embedded beat
    worker = side.start(
        [sys.executable, "-m", "taskq", "worker", "-A", "sigproj:app", "-c", "2", "-B", "-n", side.name("sig"),
         "-Q", f"q-{side.token}", "-l", "info"],
        "sig.log", SIG_OUT=str(out), TASKQ_BEAT_STORE_URL=f"sqlite:///{side.tmp}/beat.db",
    )
    wait_until(lambda: {"worker_ready", "beat_init"} <= {n["signal"] for n in notes()}, 30, "worker ready")
    wait_until(lambda: sum(n["signal"] == "worker_process_init" for n in notes()) == 2, 30, "two children")
    # When one task succeeds and one fails
    producer = side.producer()
    try:
        ok = producer.send_task("sigproj.double", (21,), queue=f"q-{side.token}")
        bad = producer.send_task("sigproj.fail", queue=f"q-{side.token}")
        wait_until(lambda: sum(n["signal"] == "task_postrun" for n in notes()) == 2, 30, "both tasks")
    finally:
        producer.close()
    worker.send_signal(signal.SIGTERM)
    assert worker.wait(60) == 0
    got = notes()
    by_signal = {n["signal"]: n for n in got}
    # Then each signal came with Celery's arguments, from the process that ran the task
    assert by_signal["worker_ready"]["sender"] == side.name("sig")
    assert by_signal["task_success"]["result"] == 42
    assert by_signal["task_failure"] == {**by_signal["task_failure"], "task_id": bad.id, "exception": "ValueError"}
    prerun = [n for n in got if n["signal"] == "task_prerun"]
    assert {p["task_id"] for p in prerun} == {ok.id, bad.id}
    child_pids = {n["pid"] for n in got if n["signal"] == "worker_process_init"}
    assert {p["pid"] for p in prerun} <= child_pids and by_signal["worker_ready"]["pid"] not in child_pids
    assert got[-1]["signal"] == "worker_shutdown"
