"""Inside a worker (``BENCH_LATENCY_PROBE=1``, bench.latency_compare ``--probe``): what lies
between the blocking read that brought a stamp task and the task's start, in the process that
runs it. Per task it pushes the CPU seconds of that thread over that stretch
(``bench:probe:cpu``: thread time, which a loaded machine does not inflate as it does the
wall clock) and how many Redis commands the process sent meanwhile (``bench:probe:sent``:
each is a round trip on the task's way). Only a read that blocked and returned entries
starts a stretch; a task claimed by the fetch script is not counted.
"""

from __future__ import annotations

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


def install() -> None:
    """Wrap redis-py's command sending and blocking XREADGROUP, and hook the stamp task's start."""
    send: Any = redis.connection.AbstractConnection.send_packed_command
    read = redis.Redis.xreadgroup

    def counted(self: Any, command: Any, check_health: bool = True) -> None:
        _sent[0] += 1
        send(self, command, check_health)

    def xreadgroup(self: Any, *args: Any, **kwargs: Any) -> Any:
        reply = read(self, *args, **kwargs)
        if reply and kwargs.get("block"):
            _woke[0], _sent[0] = time.thread_time(), 0
        return reply

    redis.connection.AbstractConnection.send_packed_command = counted  # type: ignore[method-assign]
    redis.Redis.xreadgroup = xreadgroup  # type: ignore[method-assign]
    base.on_task_start = started


def started() -> None:
    """Called first thing in the stamp task (bench.adapters.base.record_latency)."""
    global _client
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
