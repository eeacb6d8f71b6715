"""A RabbitMQ restart mid-run loses nothing confirmed, and the running worker resumes by itself.

The shared server stays untouched: the test starts a throwaway node of its own (own node
name, ports, data and log folders, no plugins) owned by the ``rabbitmq`` user, and stops
and starts it while a producer publishes and a worker consumes.
"""

from __future__ import annotations

import os
import pwd
import shlex
import shutil
import subprocess
import tempfile
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from taskq import TaskQ
from taskq.errors import PublishError
from tests.integration.workers import WorkerFactory, base_env, wait_until
from tests.servers import IN_CI, free_port, require_redis

pytestmark = [pytest.mark.rabbitmq, pytest.mark.slow]


class ThrowawayNode:
    def __init__(self) -> None:
        self.folder = Path(tempfile.mkdtemp(prefix="taskq-rabbit-"))
        self.port, self.dist_port = free_port(), free_port()
        self.name = f"taskq-{uuid.uuid4().hex[:8]}@localhost"
        (self.folder / "mnesia").mkdir()
        (self.folder / "log").mkdir()
        (self.folder / "enabled_plugins").write_text("[].\n")
        # The system config pins 5672; this one listens on our own port only.
        (self.folder / "rabbitmq.conf").write_text(f"listeners.tcp.local = 127.0.0.1:{self.port}\n")
        user = pwd.getpwnam("rabbitmq")
        for path in [self.folder, *self.folder.rglob("*")]:
            os.chown(path, user.pw_uid, user.pw_gid)
        self.folder.chmod(0o755)

    @property
    def url(self) -> str:
        return f"amqp://guest:guest@127.0.0.1:{self.port}//"

    def _env(self) -> dict[str, str]:
        return {
            "RABBITMQ_NODENAME": self.name,
            "RABBITMQ_NODE_PORT": str(self.port),
            "RABBITMQ_DIST_PORT": str(self.dist_port),
            "RABBITMQ_MNESIA_BASE": str(self.folder / "mnesia"),
            "RABBITMQ_LOG_BASE": str(self.folder / "log"),
            "RABBITMQ_ENABLED_PLUGINS_FILE": str(self.folder / "enabled_plugins"),
            "RABBITMQ_CONFIG_FILE": str(self.folder / "rabbitmq.conf"),
            "RABBITMQ_PID_FILE": str(self.folder / "pid"),
        }

    def start(self) -> None:
        assignments = " ".join(f"{k}={shlex.quote(v)}" for k, v in self._env().items())
        command = f"cd /var/lib/rabbitmq && env {assignments} rabbitmq-server -detached"
        if os.geteuid() == 0:
            subprocess.run(["su", "rabbitmq", "-s", "/bin/sh", "-c", command], check=True, timeout=60)
        else:
            subprocess.run(["/bin/sh", "-c", command], check=True, timeout=60)
        self.ctl("wait", str(self.folder / "pid"), "--timeout", "60")

    def stop(self) -> None:
        self.ctl("stop")

    def ctl(self, *args: str) -> None:
        subprocess.run(["rabbitmqctl", "-q", "-n", self.name, *args], check=True, timeout=90, capture_output=True)

    def remove(self) -> None:
        subprocess.run(["rabbitmqctl", "-q", "-n", self.name, "stop"], timeout=90, capture_output=True)
        shutil.rmtree(self.folder, ignore_errors=True)


@pytest.fixture
def node() -> Iterator[ThrowawayNode]:
    usable = bool(shutil.which("rabbitmq-server") and shutil.which("rabbitmqctl"))
    try:
        pwd.getpwnam("rabbitmq")
        usable = usable and (os.geteuid() == 0 or pwd.getpwuid(os.geteuid()).pw_name == "rabbitmq")
    except KeyError:
        usable = False
    if not usable:
        reason = "a throwaway RabbitMQ node needs rabbitmq-server and root (or the rabbitmq user)"
        if IN_CI:
            pytest.fail(reason)
        pytest.skip(reason)
    started = ThrowawayNode()
    try:
        started.start()
        yield started
    finally:
        started.remove()


def test_a_restart_mid_run_loses_nothing_confirmed(
    node: ThrowawayNode, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    env = base_env(tmp_path, node.url, require_redis(), TASKQ_RESULT_EXPIRES="600")
    for key, value in env.items():
        if key.startswith("TASKQ_"):
            monkeypatch.setenv(key, value)
    workers = WorkerFactory(tmp_path, env)
    producer = TaskQ("producer", broker=node.url)
    confirmed: list[str] = []
    refused: list[str] = []
    stop = threading.Event()

    def produce() -> None:
        i = 0
        while not stop.is_set():
            key = f"k{i}"
            i += 1
            try:
                producer.send_task("example_tasks.stamp", (key,))
                confirmed.append(key)
            except PublishError:
                refused.append(key)  # not confirmed: allowed to be lost, and the producer knows

    try:
        # Given a worker consuming while a producer publishes steadily
        worker = workers.start("-c", "2", "-P", "threads")
        thread = threading.Thread(target=produce, daemon=True)
        thread.start()
        wait_until(lambda: len(confirmed) >= 50, 30, "publishing before the restart")
        # When the node stops and starts again mid-run
        node.stop()
        before_restart = len(confirmed)
        node.start()
        wait_until(lambda: len(confirmed) >= before_restart + 50, 60, "publishing after the restart")
        stop.set()
        thread.join(30)
        # Then every confirmed message runs, on the same worker process, which reconnected by itself
        wait_until(lambda: set(confirmed) <= set(workers.marks.count("done")), 90, "every confirmed task to run")
        assert worker.proc.poll() is None
        assert "Reconnected to RabbitMQ" in worker.log
    finally:
        stop.set()
        producer.close()
        workers.close()
