"""Worker subprocesses: started in their own session, stopped with SIGTERM then SIGKILL.

Each worker leads a session of its own, so nothing ends it with the harness: a harness that
ended on a signal (a ``timeout``, a time limit) without stopping its workers left them
running on the benchmark's Redis, where ``INFO commandstats`` (which counts every client)
put their commands on the next run's idle figure. So the harness stops every group still
running when it exits, a SIGTERM or SIGHUP included (``stop_on_exit``).
"""

from __future__ import annotations

import atexit
import os
import signal
import subprocess
import tempfile
import threading
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

# The checkout root: workers import ``bench.adapters.<lib>`` from here.
CHECKOUT = Path(__file__).resolve().parent.parent
STOP_GRACE = 10.0  # seconds a worker gets for its warm shutdown before SIGKILL
_RUNNING: set[WorkerGroup] = set()  # groups with workers, stopped at exit
_EXIT_HOOKS: list[bool] = []  # [True] once stop_on_exit() installed its hooks
EXIT_SIGNALS = (signal.SIGTERM, signal.SIGHUP)


def stop_on_exit() -> None:
    """Stop every group still running when this process exits, and make a SIGTERM or SIGHUP
    an exit (SystemExit: ``finally`` blocks and atexit run) where nothing else handles it."""
    if _EXIT_HOOKS:
        return
    _EXIT_HOOKS.append(True)
    atexit.register(stop_all)
    for sig in EXIT_SIGNALS:
        if signal.getsignal(sig) is signal.SIG_DFL:
            signal.signal(sig, _exit_on_signal)


def _exit_on_signal(signum: int, _frame: object) -> None:
    raise SystemExit(128 + signum)


def stop_all() -> None:
    for group in list(_RUNNING):
        group.stop()


class WorkerGroup:
    """The worker processes one adapter started; each is a process-group leader."""

    def __init__(self, label: str, stop_grace: float = STOP_GRACE) -> None:
        self.label = label
        self.stop_grace = stop_grace
        self.procs: list[subprocess.Popen[bytes]] = []
        self.logs: list[Path] = []

    @property
    def pids(self) -> list[int]:
        return [p.pid for p in self.procs]

    def start(self, commands: Sequence[Sequence[str]], env: Mapping[str, str]) -> None:
        if self.procs:
            raise RuntimeError(f"{self.label}: workers already running")
        if threading.current_thread() is threading.main_thread():  # signal handlers: main thread only
            stop_on_exit()
        _RUNNING.add(self)
        full_env = {**os.environ, **env}
        full_env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(CHECKOUT), os.environ.get("PYTHONPATH")]))
        for index, command in enumerate(commands):
            log_fd, log_name = tempfile.mkstemp(prefix=f"bench-{self.label}-{index}-", suffix=".log")
            self.logs.append(Path(log_name))
            # start_new_session: the worker leads its own process group, so a SIGKILL of the
            # group reaches its children and nothing else.
            self.procs.append(
                subprocess.Popen(
                    list(command),
                    cwd=CHECKOUT,
                    env=full_env,
                    stdin=subprocess.DEVNULL,
                    stdout=log_fd,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                )
            )
            os.close(log_fd)

    def check_alive(self) -> None:
        """Raise with the log tail if a worker already exited (bad command, import error)."""
        for proc, log in zip(self.procs, self.logs, strict=True):
            if proc.poll() is not None:
                raise RuntimeError(f"{self.label} worker exited with {proc.returncode}: {self.tail(log)}")

    def stop(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + self.stop_grace
        for proc in self.procs:
            try:
                proc.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                pass
        for proc in self.procs:
            # The group may still hold children even when the leader exited.
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
            proc.wait(timeout=5)
        for log in self.logs:
            log.unlink(missing_ok=True)
        self.procs.clear()
        self.logs.clear()
        _RUNNING.discard(self)

    @staticmethod
    def tail(log: Path, lines: int = 8) -> str:
        try:
            text = log.read_text(errors="replace").strip().splitlines()
        except OSError:
            return "(no log)"
        return " | ".join(text[-lines:])
