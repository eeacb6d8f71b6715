"""Network partitions for tests: a worker in its own network namespace (ip netns + a veth pair
with private 10.231.x.0/30 addresses that exist only inside this machine, made and removed by
the test), whose link the test cuts and restores; and the Jepsen-style counts of what the
partition did to a batch of ``example_tasks.sleep_then`` tasks. Needs root (ip netns)."""

from __future__ import annotations

import os
import random
import shutil
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.integration.workers import PROJECT, Marks, wait_until
from tests.servers import IN_CI


def ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True, timeout=10)


class Namespace:
    """A network namespace joined to this one by a veth pair: host side ``host``, inside ``inner``."""

    def __init__(self) -> None:
        if os.geteuid() != 0 or shutil.which("ip") is None:
            if IN_CI:
                pytest.fail("the partition tests need root and ip(8), and CI=true requires them")
            pytest.skip("the partition tests need root and ip(8)")
        tag = uuid.uuid4().hex[:6]
        subnet = random.randrange(256)
        self.name = f"taskq-{tag}"
        self.link = f"tqh{tag}"  # the host side of the veth pair: set it down to cut the namespace off
        self.peer = f"tqn{tag}"
        self.host, self.inner = f"10.231.{subnet}.1", f"10.231.{subnet}.2"

    def start(self) -> None:
        ip("netns", "add", self.name)
        ip("link", "add", self.link, "type", "veth", "peer", "name", self.peer)
        ip("link", "set", self.peer, "netns", self.name)
        ip("addr", "add", f"{self.host}/30", "dev", self.link)
        ip("link", "set", self.link, "up")
        ip("netns", "exec", self.name, "ip", "addr", "add", f"{self.inner}/30", "dev", self.peer)
        ip("netns", "exec", self.name, "ip", "link", "set", self.peer, "up")
        ip("netns", "exec", self.name, "ip", "link", "set", "lo", "up")  # pika's wake-up socket pair is TCP on it

    def cut(self) -> None:
        ip("link", "set", self.link, "down")

    def restore(self) -> None:
        ip("link", "set", self.link, "up")

    def cut_for(self, seconds: float, meanwhile: Callable[[], object]) -> None:
        """Cut the link, call ``meanwhile`` (start a worker outside, say), restore the link
        once ``seconds`` have passed since the cut."""
        self.cut()
        cut_at = time.monotonic()
        meanwhile()
        wait_until(lambda: time.monotonic() - cut_at > seconds, seconds + 10, f"the partition to last {seconds} s")
        self.restore()

    def stop(self) -> None:
        subprocess.run(["ip", "link", "del", self.link], capture_output=True, timeout=10)  # takes its peer along
        subprocess.run(["ip", "netns", "del", self.name], capture_output=True, timeout=10)

    def worker(self, env: dict[str, str], log: Path, *args: str) -> subprocess.Popen[bytes]:
        """A ``taskq worker`` inside the namespace (``ip netns exec`` execs it: same pid), ready."""
        with open(log, "ab") as out:
            process = subprocess.Popen(
                ["ip", "netns", "exec", self.name, sys.executable, "-m", "taskq", "worker", "-A",
                 "example_tasks:app", "-l", "info", *args],
                cwd=PROJECT, env=env, stdout=out, stderr=subprocess.STDOUT,
            )
        try:
            wait_until(lambda: "ready:" in log.read_text() or process.poll() is not None, 30, "the worker inside")
            assert process.poll() is None, f"the worker in the namespace exited:\n{log.read_text()}"
        except BaseException:
            process.kill()
            process.wait(10)
            raise
        return process


def partition_counts(keys: list[str], acknowledged: int, marks: Marks, inside_pid: int) -> dict[str, int]:
    """acknowledged (the send returned), lost (never finished), duplicated (started more than
    once: cut off while running or unacked), recovered (finished outside the partition)."""
    started, done = marks.count("start"), marks.count("done")
    return {
        "acknowledged": acknowledged,
        "lost": sum(1 for k in keys if done[k] == 0),
        "duplicated": sum(1 for k in keys if started[k] > 1),
        "recovered": sum(1 for k in keys if any(pid != inside_pid for pid in marks.pids("done", k))),
    }
