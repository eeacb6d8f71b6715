"""Peers in virtualenvs of their own, made on first use under bench/.venvs/ (git-ignored).

arq pins redis<6 and taskiq-redis wants another redis-py than taskq's pin: installed beside
taskq, one of them breaks. Each runs instead from its own venv (``python -m venv`` and pip,
the ordinary client), with the same adapter module as in-process peers (bench/adapters/):
the harness starts the peer's worker command and enqueues through ``bench.peer_side`` with
the venv's interpreter, and polls the peer's Redis keys itself (bench/adapters/peer_keys.py).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any, ClassVar

from bench.adapters.base import QUEUE, Adapter
from bench.adapters.peer_keys import ARQ_DB, TASKIQ_DB, arq_remaining, taskiq_prepare, taskiq_remaining
from bench.procs import CHECKOUT

VENVS = CHECKOUT / "bench" / ".venvs"
PACKAGES = {"taskiq": ("taskiq", "taskiq-redis"), "arq": ("arq",)}


class VenvError(RuntimeError):
    """The peer's venv could not be made or its packages not installed (one line why)."""


def venv_python(name: str) -> Path:
    """The interpreter of ``name``'s venv, made and installed into the first time."""
    home = VENVS / name
    python = home / "bin" / "python"
    marker = home / "installed.json"
    wanted = list(PACKAGES[name])
    if python.exists() and marker.exists() and json.loads(marker.read_text()) == wanted:
        return python
    steps = [[sys.executable, "-m", "venv", "--clear", str(home)],
             [str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check", *wanted]]  # fmt: skip
    for step in steps:
        done = subprocess.run(step, capture_output=True, text=True, timeout=600)
        if done.returncode != 0:
            tail = (done.stderr or done.stdout).strip().splitlines()[-1:] or ["no output"]
            raise VenvError(f"{name}: {' '.join(step[:4])} failed: {tail[0]}")
    marker.write_text(json.dumps(wanted))
    return python


class VenvPeer(Adapter):
    """A peer driven through its venv's interpreter; see the module docstring."""

    def __init__(self) -> None:
        super().__init__()
        self.python = venv_python(self.name)
        info = self._peer_side("info")
        self.commands: list[list[str]] = info["commands"]
        self._version: str = info["version"]

    def _peer_side(self, *args: str) -> Any:
        env = {**os.environ, "BENCH_REDIS_URL": self.url, "PYTHONPATH": str(CHECKOUT)}
        command = [str(self.python), "-m", "bench.peer_side", self.name, *args]
        done = subprocess.run(command, cwd=CHECKOUT, env=env, capture_output=True, text=True, timeout=600)
        if done.returncode != 0:
            raise VenvError(f"{self.name}: bench.peer_side {' '.join(args)} failed: {done.stderr.strip()[-500:]}")
        return json.loads(done.stdout.strip().splitlines()[-1])

    def version(self) -> str:
        return f"{self._version} (own venv)"

    def fill(self, n: int, queues: Sequence[str] = (QUEUE,), with_results: bool = False) -> None:
        self._peer_side("fill", str(n))

    def enqueue_one(self, n: int, queues: Sequence[str] = (QUEUE,), with_results: bool = False) -> None:
        self.fill(n)

    def enqueue_stamp(self) -> None:
        raise NotImplementedError("latency rows run peers in-process (bench/runner.py)")

    def worker_commands(self, processes: int, queues: Sequence[str]) -> list[list[str]]:
        return self.commands if processes == 1 else self._peer_side("info", str(processes))["commands"]


class TaskiqInVenv(VenvPeer):
    name: ClassVar[str] = "taskiq"
    db: ClassVar[int] = TASKIQ_DB
    stop_grace = 2.0  # as TaskiqAdapter: its workers do not exit on SIGTERM

    def reset(self) -> None:
        super().reset()
        taskiq_prepare(self.redis)

    def remaining(self, queues: Sequence[str] = (QUEUE,)) -> int:
        return taskiq_remaining(self.redis)


class ArqInVenv(VenvPeer):
    name: ClassVar[str] = "arq"
    db: ClassVar[int] = ARQ_DB

    def remaining(self, queues: Sequence[str] = (QUEUE,)) -> int:
        return arq_remaining(self.redis)


IN_VENV: dict[str, type[VenvPeer]] = {"taskiq": TaskiqInVenv, "arq": ArqInVenv}
