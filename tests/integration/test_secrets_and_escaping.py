"""What a real worker and the CLI print: never a password, never a raw control character
taken from a message."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

import pytest

from taskq import TaskQ
from tests.contract.redis_factories import ThrowawayRedis
from tests.integration.workers import PROJECT, WorkerFactory, base_env, wait_until
from tests.servers import free_port, require_rabbitmq

PASSWORD = "S3cr3t/pw@x-9"  # a "/" and an "@": the URL carries it percent-encoded
ENCODED = quote(PASSWORD, safe="")
FORMS = (PASSWORD, ENCODED)


class PasswordRedis(ThrowawayRedis):
    """A throwaway redis-server that requires PASSWORD."""

    def __init__(self, directory: Path) -> None:
        super().__init__(directory)
        self.listen += ["--requirepass", PASSWORD]
        self.url = f"redis://:{ENCODED}@127.0.0.1:{self.port}/0"


def assert_no_password(text: str, *forms: str) -> None:
    for form in forms or FORMS:
        assert form not in text, f"password {form!r} printed:\n{text}"


def cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "taskq", *args, "-A", "example_tasks:app"],
        cwd=PROJECT, env=env, capture_output=True, text=True, timeout=60,
    )


@pytest.fixture
def server(tmp_path: Path) -> Iterator[PasswordRedis]:
    data = tmp_path / "redis-data"
    data.mkdir()
    redis_server = PasswordRedis(data)
    redis_server.start()
    try:
        yield redis_server
    finally:
        redis_server.stop()


@pytest.mark.redis
def test_a_worker_run_through_a_redis_restart_never_prints_the_password(tmp_path: Path, server: PasswordRedis) -> None:
    workers = WorkerFactory(tmp_path, base_env(tmp_path, server.url, server.url))
    producer = TaskQ("producer", broker=server.url, backend=server.url)
    try:
        # Given a worker (and beat, at debug level) on a password-protected Redis, running tasks
        worker = workers.start("-P", "threads", "-c", "2", "-l", "debug", "--beat")
        assert producer.send_task("example_tasks.add", (2, 3)).get(timeout=20) == 5
        # When Redis goes away and comes back under it
        server.stop(kill=True)
        wait_until(lambda: "unreachable" in worker.log, 30, "the worker to notice the outage")
        server.start()
        wait_until(lambda: "reachable again" in worker.log, 30, "the worker to reconnect")
        assert producer.send_task("example_tasks.add", (3, 4)).get(timeout=20) == 7
        # And the CLI reads the same server
        for args in (("queues",), ("dead-letters", "list"), ("schedule", "list")):
            proc = cli(workers.env, *args)
            assert proc.returncode == 0, proc.stderr
            assert_no_password(proc.stdout + proc.stderr)
        worker.stop()
        # Then every line it wrote shows the URL redacted, never the password
        log = worker.log
        assert f"ready: broker=redis://:***@127.0.0.1:{server.port}/0" in log
        assert f"store=redis://:***@127.0.0.1:{server.port}/0" in log  # beat's line (--beat)
        assert_no_password(log)
        assert_no_password(repr(producer))
    finally:
        producer.close()
        workers.close()


def broken_urls(redis_port: int) -> dict[str, dict[str, str]]:
    dead_port = free_port()
    return {
        "unknown scheme": {"TASKQ_BROKER_URL": f"nope://u:{ENCODED}@h/"},
        "kombu without transport": {"TASKQ_BROKER_URL": f"kombu+://u:{ENCODED}@h/"},
        "amqp bad port": {"TASKQ_BROKER_URL": f"amqp://u:{ENCODED}@127.0.0.1:notaport//"},
        "amqp refused": {"TASKQ_BROKER_URL": f"amqp://u:{ENCODED}@127.0.0.1:{dead_port}//"},
        "redis wrong password": {"TASKQ_BROKER_URL": f"redis://:wrong{ENCODED}@127.0.0.1:{redis_port}/0"},
        "redis refused": {"TASKQ_BROKER_URL": f"redis://:{ENCODED}@127.0.0.1:{dead_port}/0"},
        "kombu redis wrong password": {"TASKQ_BROKER_URL": f"kombu+redis://:wrong{ENCODED}@127.0.0.1:{redis_port}/0"},
        "kombu amqp refused": {"TASKQ_BROKER_URL": f"kombu+amqp://u:{ENCODED}@127.0.0.1:{dead_port}//"},
        "backend scheme": {
            "TASKQ_BROKER_URL": f"redis://:{ENCODED}@127.0.0.1:{redis_port}/0",
            "TASKQ_RESULT_BACKEND": f"amqp://u:{ENCODED}@127.0.0.1:{dead_port}//",
        },
        "beat store": {
            "TASKQ_BROKER_URL": f"redis://:{ENCODED}@127.0.0.1:{redis_port}/0",
            "TASKQ_BEAT_STORE_URL": f"nope://u:{ENCODED}@h/",
        },
    }


@pytest.mark.redis
@pytest.mark.parametrize("case", sorted(broken_urls(0)))
def test_config_and_connection_errors_never_print_the_password(
    tmp_path: Path, server: PasswordRedis, case: str
) -> None:
    env = {**base_env(tmp_path, f"sqlite:///{tmp_path}/unused.db"), **broken_urls(server.port)[case]}
    command = ("beat",) if case == "beat store" else ("worker", "-P", "threads")
    proc = cli(env, *command)
    assert proc.returncode != 0
    output = proc.stdout + proc.stderr
    assert "Traceback" not in output, output
    assert_no_password(output)


@pytest.mark.rabbitmq
def test_a_rabbitmq_login_failure_never_prints_the_password(tmp_path: Path) -> None:
    url = require_rabbitmq().replace("guest:guest@", f"guest:{ENCODED}@")
    proc = cli(base_env(tmp_path, url), "worker", "-P", "threads")
    assert proc.returncode == 2 and "ACCESS_REFUSED" in proc.stderr, proc.stderr
    assert_no_password(proc.stdout + proc.stderr)


EVIL_ID = "evil\nINFO forged line \x1b[31mred"
SHOWN_ID = "evil\\nINFO forged line \\x1b[31mred"


def test_ids_and_names_with_newlines_and_ansi_escapes_are_escaped(tmp_path: Path) -> None:
    env = base_env(tmp_path, f"sqlite:///{tmp_path}/broker.db")
    workers = WorkerFactory(tmp_path, env)
    producer = TaskQ("producer", broker=env["TASKQ_BROKER_URL"])
    try:
        # Given a worker, a message for a real task and one for an unknown task, both with a hostile id
        worker = workers.start("-P", "threads", "-c", "1")
        assert producer.send_task("example_tasks.add", (1, 1), task_id=EVIL_ID + "-ok").get(timeout=30) == 2
        producer.send_task("no.such\ntask\x1b[0m", task_id=EVIL_ID)
        wait_until(lambda: producer.broker.dead_letters(), 20, "the dead letter")
        worker.stop()
        # Then the worker's log shows them escaped, one line each
        log = worker.log
        assert "\x1b" not in log
        assert not any(line.startswith("INFO forged") for line in log.splitlines())
        assert f"Task example_tasks.add[{SHOWN_ID}-ok] succeeded" in log
        assert f"Message {SHOWN_ID} from queue celery dead-lettered: unknown task" in log
        # And so does the dead-letter listing
        proc = cli(env, "dead-letters", "list")
        assert proc.returncode == 0, proc.stderr
        [line] = proc.stdout.splitlines()
        assert line.startswith(SHOWN_ID + "\tcelery\t") and "\\x1b[0m" in line and "\x1b" not in line
    finally:
        producer.close()
        workers.close()
