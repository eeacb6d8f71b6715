"""A throwaway RabbitMQ node for tests that stop, restart or reconfigure a server.

The shared server stays untouched: a node has its own node name, ports, data and log
folders and no plugins, and is owned by the ``rabbitmq`` user. A subclass adds listeners or
files through ``extra_config`` (see test_rabbitmq_tls.py).
"""

from __future__ import annotations

import os
import pwd
import shlex
import shutil
import signal
import subprocess
import tempfile
import time
import uuid
from pathlib import Path

import pytest

from tests.servers import IN_CI, free_ports


def require_throwaway_node() -> None:
    """Skip (laptop) or fail (CI=true) unless this process can start a node of its own."""
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


def _alive(pid: int) -> bool:
    """Running (not a zombie: a VM started with -detached is reaped by init, maybe late)."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


class ThrowawayNode:
    def __init__(self) -> None:
        self.folder = Path(tempfile.mkdtemp(prefix="taskq-rabbit-"))
        self.port, self.dist_port = free_ports(2)
        self.name = f"taskq-{uuid.uuid4().hex[:8]}@localhost"
        (self.folder / "mnesia").mkdir()
        (self.folder / "log").mkdir()
        (self.folder / "enabled_plugins").write_text("[].\n")
        # The system config pins 5672; this one listens on our own port only.
        lines = [f"listeners.tcp.local = 127.0.0.1:{self.port}", *self.extra_config()]
        (self.folder / "rabbitmq.conf").write_text("".join(line + "\n" for line in lines))
        user = pwd.getpwnam("rabbitmq")
        for path in [self.folder, *self.folder.rglob("*")]:
            os.chown(path, user.pw_uid, user.pw_gid)
        self.folder.chmod(0o755)

    def extra_config(self) -> list[str]:
        """rabbitmq.conf lines beyond the plain listener; files written here become the node's."""
        return []

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
        (self.folder / "pid").unlink(missing_ok=True)  # a killed VM's: `wait` would wait for that pid
        assignments = " ".join(f"{k}={shlex.quote(v)}" for k, v in self._env().items())
        command = f"cd /var/lib/rabbitmq && env {assignments} rabbitmq-server -detached"
        if os.geteuid() == 0:
            subprocess.run(["su", "rabbitmq", "-s", "/bin/sh", "-c", command], check=True, timeout=60)
        else:
            subprocess.run(["/bin/sh", "-c", command], check=True, timeout=60)
        self.ctl("wait", str(self.folder / "pid"), "--timeout", "60")

    def stop(self) -> None:
        self.ctl("stop")

    def kill(self) -> None:
        """SIGKILL the node's Erlang VM (beam.smp): no goodbye to clients or to the cluster."""
        pid = int((self.folder / "pid").read_text().split()[0])
        os.kill(pid, signal.SIGKILL)
        deadline = time.monotonic() + 10
        while _alive(pid):
            assert time.monotonic() < deadline, f"the node's VM {pid} outlived SIGKILL for 10 s"
            time.sleep(0.02)

    def ctl(self, *args: str) -> str:
        done = subprocess.run(
            ["rabbitmqctl", "-q", "-n", self.name, *args], check=True, timeout=90, capture_output=True, text=True
        )
        return done.stdout

    def remove(self) -> None:
        subprocess.run(["rabbitmqctl", "-q", "-n", self.name, "stop"], timeout=90, capture_output=True)
        shutil.rmtree(self.folder, ignore_errors=True)
