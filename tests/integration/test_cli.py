"""The CLI as a user runs it: one-line errors with exit status 2, never a traceback."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from taskq import TaskQ
from tests.integration.workers import PROJECT, WorkerFactory
from tests.servers import require_rabbitmq


def taskq(*args: str, env: dict[str, str] | None = None, input: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "taskq", *args], cwd=PROJECT, env=env, capture_output=True, text=True, timeout=60,
        input=input,
    )


def assert_one_line_error(proc: subprocess.CompletedProcess[str], text: str) -> None:
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr
    errors = [line for line in proc.stderr.splitlines() if line.strip()]
    assert any(text in line for line in errors), proc.stderr
    assert len([e for e in errors if e.startswith("taskq: error") or e.startswith("Error")]) == 1, proc.stderr


@pytest.mark.parametrize(
    ("args", "text"),
    [
        (["worker", "-A", "no_such_module:app"], "no module named 'no_such_module'"),
        (["worker", "-A", "example_tasks:nothing"], "no TaskQ app found"),
        (["call", "-A", "example_tasks:app", "example_tasks.add", "--args", "[1, 2"], "--args is not valid JSON"),
        (["call", "-A", "example_tasks:app", "example_tasks.add", "--kwargs", "[1]"], "--kwargs must be a JSON object"),
        (["worker", "-A", "example_tasks:app", "-P", "nonsense"], "Invalid value for '-P'"),
        (["worker", "-A", "example_tasks:app", "-P", "gevent", "--max-tasks-per-child", "5"], "use -P prefork"),
        (["worker", "-A", "example_tasks:app", "-c", "0"], "Invalid value for '-c'"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(broker_env: dict[str, str], args: list[str], text: str) -> None:
    assert_one_line_error(taskq(*args, env=broker_env), text)


def test_bad_and_unreachable_broker_urls(broker_env: dict[str, str]) -> None:
    bad = {**broker_env, "TASKQ_BROKER_URL": "mongodb://localhost/x"}
    assert_one_line_error(taskq("worker", "-A", "example_tasks:app", env=bad), "is not supported")
    no_database = {**broker_env, "TASKQ_BROKER_URL": "postgresql://postgres@127.0.0.1:5432/no_such_db"}
    assert_one_line_error(taskq("worker", "-A", "example_tasks:app", env=no_database), "cannot connect")
    memory = {**broker_env, "TASKQ_BROKER_URL": "memory://x"}
    assert_one_line_error(taskq("worker", "-A", "example_tasks:app", env=memory), "use -P threads or -P solo")
    unreachable = {**broker_env, "TASKQ_BROKER_URL": "redis://127.0.0.1:1/0"}
    assert_one_line_error(taskq("worker", "-A", "example_tasks:app", env=unreachable), "Connection refused")
    missing = {**broker_env, "TASKQ_BROKER_URL": "sqlite:////nonexistent-dir/x.db"}
    assert_one_line_error(taskq("call", "-A", "example_tasks:app", "example_tasks.add", env=missing), "SQLite")


A = ("-A", "example_tasks:app")


@pytest.mark.parametrize(
    ("url", "args", "text"),
    [
        ("foo://x", ["queues", *A], "broker URL 'foo://x' is not supported"),
        ("redis//127.0.0.1:6379/0", ["dead-letters", "list", *A], "is not supported"),
        ("sqlite://host/x.db", ["purge", *A, "-f"], "must look like sqlite:///relative.db"),
        ("redis://127.0.0.1:notaport/0", ["call", *A, "example_tasks.add"], "the port must be a number"),
        ("redis://127.0.0.1:6379/abc", ["result", *A, "some-id"], "the path must be a database number"),
        ("redis://127.0.0.1:6379/abc", ["schedule", "list", *A], "the path must be a database number"),
        ("memory://", ["call", *A, "example_tasks.add", "--countdown", "inf"], "countdown must be a finite number"),
        ("memory://", ["call", *A, "example_tasks.add", "--countdown", "1e300"], "countdown must be a finite number"),
    ],
)
def test_bad_urls_and_times_in_every_command_are_one_line_and_exit_2(
    broker_env: dict[str, str], url: str, args: list[str], text: str
) -> None:
    assert_one_line_error(taskq(*args, env={**broker_env, "TASKQ_BROKER_URL": url}), text)


def test_a_queue_name_rabbitmq_refuses_is_an_error_up_front(broker_env: dict[str, str]) -> None:
    env = {**broker_env, "TASKQ_BROKER_URL": require_rabbitmq()}  # nothing is declared: the name fails first
    for args in (["worker", *A, "-Q", "amq.bad"], ["call", *A, "example_tasks.add", "-Q", "amq.bad"],
                 ["purge", *A, "-f", "-Q", "amq.bad"]):
        assert_one_line_error(taskq(*args, env=env), "RabbitMQ reserves names starting with 'amq.'")


def test_call_result_queues_purge_and_dead_letters(
    broker_env: dict[str, str], workers: WorkerFactory, producer: TaskQ, tmp_path: Path
) -> None:
    sent = taskq("call", "-A", "example_tasks:app", "example_tasks.add", "--args", "[20, 22]", env=broker_env)
    assert sent.returncode == 0, sent.stderr
    task_id = sent.stdout.strip()
    queues = taskq("queues", "-A", "example_tasks:app", env=broker_env)
    assert queues.returncode == 0 and queues.stdout.splitlines() == ["celery\t1\t0"]
    workers.start("-c", "1")
    waited = taskq("result", "-A", "example_tasks:app", task_id, "--wait", "--timeout", "20", env=broker_env)
    assert json.loads(waited.stdout)["result"] == 42 and json.loads(waited.stdout)["status"] == "SUCCESS"
    producer.send_task("example_tasks.missing", task_id="dead-1")
    from tests.integration.workers import wait_until

    wait_until(lambda: producer.broker.dead_letters(), 15, "dead letter")
    listed = taskq("dead-letters", "list", "-A", "example_tasks:app", env=broker_env)
    assert "dead-1" in listed.stdout and "unknown task 'example_tasks.missing'" in listed.stdout
    workers.workers[0].stop()
    assert "requeued 1" in taskq("dead-letters", "requeue", "-A", "example_tasks:app", env=broker_env).stdout
    assert producer.broker.queue_length("celery") == 1
    purged = taskq("purge", "-A", "example_tasks:app", "-f", env=broker_env)
    assert "purged 1" in purged.stdout and producer.broker.queue_length("celery") == 0


def test_worker_check_follows_the_heartbeat(broker_env: dict[str, str], workers: WorkerFactory, tmp_path: Path) -> None:
    env = {**broker_env, "TASKQ_WORKER_HEARTBEAT_FILE": str(tmp_path / "hb")}
    assert taskq("worker", "-A", "example_tasks:app", "--check", env=env).returncode == 1  # no worker yet
    w = workers.start("-c", "1", TASKQ_WORKER_HEARTBEAT_FILE=str(tmp_path / "hb"))
    from tests.integration.workers import wait_until

    wait_until(lambda: (tmp_path / "hb").exists(), 10, "heartbeat file")
    assert taskq("worker", "-A", "example_tasks:app", "--check", env=env).returncode == 0
    w.stop()
    stale = taskq("worker", "-A", "example_tasks:app", "--check", "--max-age", "0", env=env)
    assert stale.returncode == 1
