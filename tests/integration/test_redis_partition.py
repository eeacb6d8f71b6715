"""A network partition: a worker in its own network namespace (ip netns + a veth pair with
private 10.231.x.0/30 addresses that exist only inside this machine, made and removed by the
test) loses its link to Redis for longer than the recovery time, then gets it back. Its
claims run on a worker outside the partition meanwhile; nothing acknowledged is lost.
Counts are printed Jepsen-style (run with -s). Needs root (ip netns)."""

from __future__ import annotations

import os
import random
import shutil
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from taskq import TaskQ, states
from tests.integration.workers import PROJECT, Marks, WorkerFactory, base_env, wait_until
from tests.redis_topology import _Processes
from tests.servers import IN_CI, free_port

pytestmark = [pytest.mark.redis, pytest.mark.slow]


def ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True, timeout=10)


@dataclass
class Namespace:
    """A network namespace joined to this one by a veth pair: host side ``host``, inside ``inner``."""

    name: str
    link: str  # the host side of the veth pair: set it down to cut the namespace off
    host: str
    inner: str

    @classmethod
    def create(cls) -> Namespace:
        if os.geteuid() != 0 or shutil.which("ip") is None:
            if IN_CI:
                pytest.fail("the partition test needs root and ip(8), and CI=true requires it")
            pytest.skip("the partition test needs root and ip(8)")
        tag = uuid.uuid4().hex[:6]
        subnet = random.randrange(256)
        ns = cls(f"taskq-{tag}", f"tqh{tag}", f"10.231.{subnet}.1", f"10.231.{subnet}.2")
        ip("netns", "add", ns.name)
        try:
            ip("link", "add", ns.link, "type", "veth", "peer", "name", f"tqn{tag}")
            ip("link", "set", f"tqn{tag}", "netns", ns.name)
            ip("addr", "add", f"{ns.host}/30", "dev", ns.link)
            ip("link", "set", ns.link, "up")
            ip("netns", "exec", ns.name, "ip", "addr", "add", f"{ns.inner}/30", "dev", f"tqn{tag}")
            ip("netns", "exec", ns.name, "ip", "link", "set", f"tqn{tag}", "up")
        except BaseException:
            ns.remove()
            raise
        return ns

    def cut(self) -> None:
        ip("link", "set", self.link, "down")

    def restore(self) -> None:
        ip("link", "set", self.link, "up")

    def remove(self) -> None:
        subprocess.run(["ip", "link", "del", self.link], capture_output=True, timeout=10)  # takes its peer along
        subprocess.run(["ip", "netns", "del", self.name], capture_output=True, timeout=10)


@pytest.fixture
def namespace() -> Iterator[Namespace]:
    ns = Namespace.create()
    try:
        yield ns
    finally:
        ns.remove()


def test_a_worker_cut_off_longer_than_the_recovery_time_loses_nothing(
    namespace: Namespace, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A Redis server that listens on loopback and on the host side of the veth pair.
    servers = _Processes(tmp_path)
    port = free_port()
    # Protected mode refuses clients not on loopback; the veth address exists on this machine only.
    servers.spawn(port, "--protected-mode", "no", bind=f"127.0.0.1 {namespace.host}")
    try:
        servers.wait_up(port)
        env = base_env(tmp_path, f"redis://127.0.0.1:{port}/0", TASKQ_BEAT_STORE_URL=f"sqlite:///{tmp_path}/beat.db")
        for key, value in env.items():
            if key.startswith("TASKQ_"):
                monkeypatch.setenv(key, value)
        inside_env = {**env, "TASKQ_BROKER_URL": f"redis://{namespace.host}:{port}/0"}
        marks = Marks(Path(env["TASKQ_TEST_MARKS"]))
        producer = TaskQ("producer")
        log = open(tmp_path / "inside.log", "ab")  # closed in finally
        inside = subprocess.Popen(
            ["ip", "netns", "exec", namespace.name, sys.executable, "-m", "taskq", "worker", "-A",
             "example_tasks:app", "-l", "info", "-c", "2", "-P", "threads", "--prefetch-multiplier", "20"],
            cwd=PROJECT, env=inside_env, stdout=log, stderr=subprocess.STDOUT,
        )
        outside = WorkerFactory(tmp_path, env)
        try:
            wait_until(lambda: "ready:" in (tmp_path / "inside.log").read_text(), 20, "the worker in the namespace")
            # Given tasks claimed by the worker inside the namespace
            keys = [f"p{i}" for i in range(40)]
            results = producer.send_many("example_tasks.sleep_then", [((k, 0.1), {}) for k in keys])
            acknowledged = len(results)  # send_many returned: Redis has them all
            wait_until(lambda: sum(marks.count("done").values()) >= 4, 20, "tasks done inside")
            inside_pid = inside.pid
            # When its link is cut for three times the recovery time (2 s) while another
            # worker runs outside, and the link comes back
            namespace.cut()
            cut_at = time.monotonic()
            outside.start("-c", "2", "-P", "threads")
            wait_until(lambda: time.monotonic() - cut_at > 6, 10, "the partition to last 6 s")
            namespace.restore()
            # Then every task finished, those it held having run outside
            finished = [r.get(timeout=40) for r in results]
            assert finished == keys
            assert all(r.state == states.SUCCESS for r in results)
        finally:
            inside.kill()
            inside.wait(10)
            log.close()
            outside.close()
            producer.close()
        started = marks.count("start")
        counts = {
            "acknowledged": acknowledged,
            "lost": sum(1 for k in keys if marks.count("done")[k] == 0),
            "duplicated": sum(1 for k in keys if started[k] > 1),  # cut off while running: ran again
            "recovered": sum(1 for k in keys if any(pid != inside_pid for pid in marks.pids("done", k))),
        }
        print(f"\npartition of a worker (6 s, recovery time 2 s): {counts}")
        assert counts["lost"] == 0
        assert counts["recovered"] > 0  # the cut-off worker's claims ran elsewhere
    finally:
        servers.stop()
