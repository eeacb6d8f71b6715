"""Inside a worker (``BENCH_LATENCY_PROBE=1``, bench.latency_compare ``--probe``): what lies
between the blocking read that brought a stamp task and the task's start, in the process that
runs it. Per task it pushes the CPU seconds of that thread over that stretch
(``bench:probe:cpu``: thread time, which a loaded machine does not inflate as it does the
wall clock) and how many Redis commands the process sent meanwhile (``bench:probe:sent``:
each is a round trip on the task's way). Only a read that blocked and returned entries
starts a stretch; a task claimed by the fetch script is not counted.

bench/wake_path.py also sets ``BENCH_PROBE_WINDOW`` to look inside the stretch: ``cprofile``
profiles every stretch (the stats go to ``BENCH_PROBE_OUT``.<pid>), ``cprofile-cycle`` whole
cycles (as ``cycle`` below, one thread); ``callgrind`` (under
``valgrind --tool=callgrind --collect-atstart=no``) collects instructions in the stretches
only; ``cycle`` collects whole cycles, from one stretch's start to the next one's (the task,
its ack, the next fetch and the wait included). Both skip ``BENCH_PROBE_SKIP`` stretches
(warm-up) and stop after ``BENCH_PROBE_COUNT``.
"""

from __future__ import annotations

import ctypes
import os
import time
from typing import Any

import redis
import redis.connection

from bench.adapters import base

CPU_KEY = "bench:probe:cpu"
SENT_KEY = "bench:probe:sent"

_woke = [0.0]  # thread time when the last blocking read returned entries; 0: none pending
_sent = [0]  # commands sent since then
_client: redis.Redis | None = None


class Window:
    """What watches the stretches beyond their CPU time (``BENCH_PROBE_WINDOW``)."""

    def __init__(self, mode: str) -> None:
        self.mode = mode
        self.skip = int(os.environ.get("BENCH_PROBE_SKIP", "20"))
        self.count = int(os.environ.get("BENCH_PROBE_COUNT", "1000000"))
        self.opened = 0  # stretches started
        self.collecting = False
        self.out = f"{os.environ.get('BENCH_PROBE_OUT', '/tmp/wake_path')}.{{pid}}"
        self._profile: Any = None
        self._toggle: Any = None
        if mode in ("cprofile", "cprofile-cycle"):
            import cProfile

            self._profile = cProfile.Profile()
        elif mode in ("callgrind", "cycle"):
            self._toggle = ctypes.CDLL(os.environ["BENCH_PROBE_TOGGLE"]).bench_toggle_collect

    def _measured(self) -> bool:
        return self.skip < self.opened <= self.skip + self.count

    def open(self) -> None:
        self.opened += 1
        if self.mode in ("cycle", "cprofile-cycle"):  # on at the first measured stretch, off after them
            if self._measured() != self.collecting:
                self.collecting = not self.collecting
                if self._profile is None:
                    self._toggle()
                elif self.collecting:
                    self._profile.enable()
                else:
                    self._profile.disable()
                    self._profile.dump_stats(self.out.format(pid=os.getpid()))
            return
        if not self._measured():
            return
        self.collecting = True
        if self._profile is not None:
            self._profile.enable()
        else:
            self._toggle()

    def close(self) -> None:
        if self.mode in ("cycle", "cprofile-cycle") or not self.collecting:
            return
        self.collecting = False
        if self._profile is not None:
            self._profile.disable()
            if self.opened % 50 == 0 or self.opened == self.skip + self.count:
                self._profile.dump_stats(self.out.format(pid=os.getpid()))
        else:
            self._toggle()


_window: Window | None = None


def install() -> None:
    """Wrap redis-py's command sending and blocking XREADGROUP, and hook the stamp task's start."""
    global _window
    send: Any = redis.connection.AbstractConnection.send_packed_command
    read = redis.Redis.xreadgroup
    mode = os.environ.get("BENCH_PROBE_WINDOW")
    _window = Window(mode) if mode else None

    def counted(self: Any, command: Any, check_health: bool = True) -> None:
        _sent[0] += 1
        send(self, command, check_health)

    def xreadgroup(self: Any, *args: Any, **kwargs: Any) -> Any:
        reply = read(self, *args, **kwargs)
        if reply and kwargs.get("block"):
            _woke[0], _sent[0] = time.thread_time(), 0
            if _window is not None:
                _window.open()
        return reply

    redis.connection.AbstractConnection.send_packed_command = counted  # type: ignore[method-assign]
    redis.Redis.xreadgroup = xreadgroup  # type: ignore[method-assign]
    base.on_task_start = started


def started() -> None:
    """Called first thing in the stamp task (bench.adapters.base.record_latency)."""
    global _client
    if _window is not None:
        _window.close()
    cpu, sent = time.thread_time() - _woke[0], _sent[0]
    if not _woke[0]:
        return
    _woke[0] = 0.0
    if _client is None:
        _client = redis.Redis.from_url(os.environ["BENCH_REDIS_URL"])
    pipe = _client.pipeline(transaction=False)
    pipe.rpush(CPU_KEY, cpu)
    pipe.rpush(SENT_KEY, sent)
    pipe.execute()
