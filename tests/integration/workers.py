"""Real ``taskq worker`` subprocesses for integration tests, on any broker URL."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

PROJECT = Path(__file__).resolve().parent.parent / "example_project"


def wait_until(predicate: Callable[[], Any], timeout: float, what: str = "condition") -> Any:
    """Poll a condition until it holds or the deadline passes (never a blind sleep)."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.05)


class Marks:
    """The start/done lines tasks write (see example_tasks.mark)."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def lines(self) -> list[tuple[str, str, int]]:
        if not self.path.exists():
            return []
        out = []
        text = self.path.read_text()
        # Only whole lines: a worker may be appending one while this reads.
        for line in text[: text.rfind("\n") + 1].splitlines():
            event, key, pid = line.split()
            out.append((event, key, int(pid)))
        return out

    def complete_lines(self) -> int:
        """Lines written in full so far (a line being appended is not counted yet)."""
        return self.path.read_bytes().count(b"\n") if self.path.exists() else 0

    def count(self, event: str) -> Counter[str]:
        return Counter(key for e, key, _ in self.lines() if e == event)

    def pids(self, event: str, key: str) -> list[int]:
        return [pid for e, k, pid in self.lines() if e == event and k == key]


class WorkerProcess:
    def __init__(self, env: dict[str, str], log_path: Path, *args: str) -> None:
        self.log_path = log_path
        self._log = open(log_path, "ab")
        # Each worker its own node name: two live workers with one name refuse to start (issue 17).
        name = [] if {"-n", "--hostname"} & set(args) else ["-n", f"w-{uuid.uuid4().hex[:8]}@%h"]
        cmd = [sys.executable, "-m", "taskq", "worker", "-A", "example_tasks:app", "-l", "info", *name, *args]
        self.proc = subprocess.Popen(cmd, cwd=PROJECT, env=env, stdout=self._log, stderr=subprocess.STDOUT)

    @property
    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def wait_ready(self, timeout: float = 20) -> WorkerProcess:
        wait_until(lambda: "ready:" in self.log or self.proc.poll() is not None, timeout, "worker start")
        assert self.proc.poll() is None, f"worker exited at start:\n{self.log}"
        return self

    def signal(self, sig: int) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)

    def kill_tree(self) -> None:
        """SIGKILL the supervisor; its children die with it (PR_SET_PDEATHSIG)."""
        self.signal(signal.SIGKILL)
        self.proc.wait(10)

    def stop(self, timeout: float = 30) -> int:
        self.signal(signal.SIGTERM)
        try:
            code = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            code = self.proc.wait(10)
        self._log.close()
        return code


class WorkerFactory:
    """Starts workers sharing one environment; stops them all at the end of a test."""

    def __init__(self, tmp: Path, env: dict[str, str]) -> None:
        self.tmp = tmp
        self.env = env
        self.workers: list[WorkerProcess] = []
        self.marks = Marks(Path(env["TASKQ_TEST_MARKS"]))

    def start(self, *args: str, ready: bool = True, **env: str) -> WorkerProcess:
        log = self.tmp / f"worker-{len(self.workers)}.log"
        worker = WorkerProcess({**self.env, **env}, log, *args)
        self.workers.append(worker)
        return worker.wait_ready() if ready else worker

    def close(self) -> None:
        for w in self.workers:
            if w.proc.poll() is None:
                w.proc.kill()
                w.proc.wait(10)


def base_env(tmp: Path, broker_url: str, backend_url: str | None = None, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TASKQ_")}
    env.update(
        TASKQ_BROKER_URL=broker_url,
        TASKQ_RECOVERY_TIME="2",
        TASKQ_WORKER_SHUTDOWN_TIMEOUT="20",
        TASKQ_BROKER_POLL_INTERVAL="0.02",
        TASKQ_TEST_MARKS=str(tmp / "marks.log"),
        PYTHONPATH=os.pathsep.join([str(PROJECT), str(Path(__file__).resolve().parents[2])]),
        PYTHONUNBUFFERED="1",
    )
    if backend_url:
        env["TASKQ_RESULT_BACKEND"] = backend_url
    if not broker_url.startswith(("sqlite:", "redis:", "rediss:")):
        env["TASKQ_BEAT_STORE_URL"] = f"sqlite:///{tmp}/beat.db"  # else a shared file in the project folder
    env.update(extra)
    return env
