"""arq through its normal API: ``await pool.enqueue_job(...)``, the ``arq`` worker CLI.

arq has no bulk enqueue and no multi-process worker: "2 worker processes" is two ``arq``
processes. arq's defaults otherwise (max_jobs 10, poll_delay 0.5 s when idle, results kept
1 h; without results ``keep_result=0``).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from typing import Any, ClassVar

import arq as arq_lib
from arq import create_pool
from arq.connections import RedisSettings

from bench.adapters.base import QUEUE, Adapter, env_results, env_url, python_tool, record_latency
from bench.adapters.peer_keys import ARQ_DB as DB
from bench.adapters.peer_keys import arq_remaining


async def noop(ctx: dict[str, Any]) -> None:
    return None


async def stamp(ctx: dict[str, Any], sent_at: float) -> None:
    record_latency(sent_at)


class WorkerSettings:
    functions: ClassVar[list[Any]] = [noop, stamp]
    redis_settings = RedisSettings.from_dsn(env_url(DB))
    keep_result = 3600 if env_results() else 0


class ArqAdapter(Adapter):
    name = "arq"
    db = DB
    slow_drain = True
    worker_note = (
        "2 arq worker processes (arq runs one asyncio worker per process; defaults: max_jobs 10, poll_delay 0.5 s)"
    )

    def __init__(self) -> None:
        super().__init__()
        self.loop = asyncio.new_event_loop()
        self.pool = self.loop.run_until_complete(create_pool(RedisSettings.from_dsn(self.url)))

    def version(self) -> str:
        return f"arq {arq_lib.VERSION}"

    def enqueue_one(self, n: int, queues: Sequence[str] = (QUEUE,), with_results: bool = False) -> None:
        async def send() -> None:
            for _ in range(n):
                await self.pool.enqueue_job("noop")

        self.loop.run_until_complete(send())

    def enqueue_stamp(self) -> None:
        self.loop.run_until_complete(self.pool.enqueue_job("stamp", time.time()))

    def worker_commands(self, processes: int, queues: Sequence[str]) -> list[list[str]]:
        return [[*python_tool("arq"), f"{__name__}.WorkerSettings"] for _ in range(processes)]

    def remaining(self, queues: Sequence[str] = (QUEUE,)) -> int:
        return arq_remaining(self.redis)

    def close(self) -> None:
        super().close()
        self.loop.run_until_complete(self.pool.aclose())
        self.loop.close()
