"""Every CLI command that reaches a broker, as a user runs it, on every broker.

Each broker gets one isolated place (a SQLite file, a Redis key prefix, a fresh RabbitMQ
vhost) and one test that walks the commands in order: worker --check, call, queues,
result, dead-letters list/requeue/purge, purge, schedule add/list/remove. The memory broker
lives in one process, so there every command runs and exits 0 on an empty broker.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import uuid
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from pathlib import Path

import pytest

from taskq import TaskQ
from taskq.envelope import Envelope
from tests.contract.rabbitmq_factories import fresh_vhost
from tests.integration.conftest import BROKER_ENVS
from tests.integration.workers import PROJECT, base_env
from tests.servers import require_rabbitmq, require_redis

Env = tuple[dict[str, str], Callable[[], None]]


def rabbitmq_env(tmp_path: Path) -> Env:
    stack = ExitStack()
    url = stack.enter_context(fresh_vhost(require_rabbitmq()))
    return base_env(tmp_path, url, require_redis(), TASKQ_RESULT_EXPIRES="600"), stack.close


def redis_env(tmp_path: Path) -> Env:
    env, cleanup = BROKER_ENVS["redis"](tmp_path)
    prefix = json.loads(env["TASKQ_BROKER_TRANSPORT_OPTIONS"])["global_keyprefix"]
    return {**env, "TASKQ_BEAT_STORE_URL": f"{env['TASKQ_BROKER_URL']}?prefix={prefix}beat:"}, cleanup


ENVS: dict[str, Callable[[Path], Env]] = {
    "sqlite": BROKER_ENVS["sqlite"],
    "redis": redis_env,
    "rabbitmq": rabbitmq_env,
    "memory": lambda tmp: (base_env(tmp, "memory://"), lambda: None),
}


@pytest.fixture(params=sorted(ENVS))
def cli_env(
    request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[dict[str, str]]:
    env, cleanup = ENVS[request.param](tmp_path)
    for key, value in env.items():
        if key.startswith("TASKQ_"):
            monkeypatch.setenv(key, value)  # this test process's app uses it too
    try:
        yield env
    finally:
        cleanup()


def run(env: dict[str, str], *args: str) -> str:
    """One ``taskq`` command that must succeed; its stdout."""
    done = subprocess.run(
        [sys.executable, "-m", "taskq", *args], cwd=PROJECT, env=env, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, f"taskq {' '.join(args)} exited {done.returncode}: {done.stderr}"
    assert "Traceback" not in done.stderr
    return done.stdout


def counts(env: dict[str, str]) -> dict[str, tuple[int, int]]:
    """``taskq queues`` as {queue: (messages, dead letters)}."""
    rows = [line.split("\t") for line in run(env, "queues", "-A", "example_tasks:app").splitlines()]
    return {name: (int(messages), int(dead)) for name, messages, dead in rows}


def dead_letter(app: TaskQ, task_id: str, headers: dict[str, object]) -> None:
    """Publish a message to the default queue and dead-letter it, as a worker would."""
    broker = app.broker
    broker.publish("celery", Envelope({"lang": "py", "task": "example_tasks.add", "id": task_id, **headers}, b"[]"))
    taken = broker.fetch(["celery"], 10, timeout=5)
    for delivery in taken:
        if delivery.envelope is not None and delivery.envelope.id == task_id:
            broker.dead_letter(delivery, f"poison {task_id}")
    broker.requeue([d for d in taken if d.envelope is None or d.envelope.id != task_id])


def test_every_command_on_every_broker(cli_env: dict[str, str], tmp_path: Path) -> None:
    app_args = ("-A", "example_tasks:app")
    durable = not cli_env["TASKQ_BROKER_URL"].startswith("memory:")
    is_amqp = cli_env["TASKQ_BROKER_URL"].startswith("amqp")
    # worker --check: no worker has written a heartbeat there
    check = subprocess.run(
        [sys.executable, "-m", "taskq", "worker", *app_args, "--check"], cwd=PROJECT, capture_output=True, text=True,
        env={**cli_env, "TASKQ_WORKER_HEARTBEAT_FILE": str(tmp_path / "hb")}, timeout=60,
    )
    assert check.returncode == 1 and "none" in check.stdout, check.stderr
    # A fresh place with one message: no dead-letter store exists yet
    task_id = run(cli_env, "call", *app_args, "example_tasks.add", "--args", "[20, 22]").strip()
    assert re.fullmatch(r"[0-9a-f-]{36}", task_id)
    assert counts(cli_env)["celery"] == ((1, 0) if durable else (0, 0))
    assert run(cli_env, "dead-letters", "list", *app_args) == ""
    assert json.loads(run(cli_env, "result", *app_args, task_id))["status"] == "PENDING"
    # Two dead letters (on RabbitMQ one carries a bytes header, as AMQP allows)
    if durable:
        app = TaskQ("cli-test")
        try:
            dead_letter(app, "dead-1", {"blob": b"\x00\xffraw"} if is_amqp else {})
            dead_letter(app, "dead-2", {})
        finally:
            app.close()
    listed = run(cli_env, "dead-letters", "list", *app_args)
    if durable:
        assert [line.split("\t")[0] for line in listed.splitlines()] == ["dead-1", "dead-2"]
        assert "celery" in listed and "poison dead-1" in listed
    assert counts(cli_env)["celery"] == ((1, 2) if durable else (0, 0))
    assert run(cli_env, "dead-letters", "requeue", *app_args, "dead-1") == f"requeued {int(durable)} message(s)\n"
    assert run(cli_env, "dead-letters", "purge", *app_args) == f"purged {int(durable)} dead letter(s)\n"
    assert run(cli_env, "purge", *app_args, "-f") == f"purged {2 if durable else 0} message(s)\n"
    # The schedule commands (the beat store: the broker's server, or a SQLite file beside it)
    entry = f"e-{uuid.uuid4().hex[:8]}"
    assert entry in run(cli_env, "schedule", "add", *app_args, entry, "example_tasks.add", "--every", "60")
    assert entry in run(cli_env, "schedule", "list", *app_args)
    assert run(cli_env, "schedule", "remove", *app_args, entry) == f"removed {entry}\n"
