"""Huey through its normal API: calling a ``@huey.task()`` enqueues it; ``huey_consumer``.

Huey has no bulk enqueue. RedisHuey's default blocking dequeue (BRPOP). With results, huey
stores return values (``store_none=True`` so a no-op's None is stored like everyone's).
"""

from __future__ import annotations

import time
from collections.abc import Sequence

import huey as huey_lib  # type: ignore[import-untyped,unused-ignore]
from huey import RedisHuey  # type: ignore[import-untyped,unused-ignore]

from bench.adapters.base import QUEUE, Adapter, env_results, env_url, python_tool, record_latency

DB = 13

huey = RedisHuey(QUEUE, url=env_url(DB), results=env_results(), store_none=True)


@huey.task(name="bench.noop")  # type: ignore[untyped-decorator,unused-ignore]
def noop() -> None:
    return None


@huey.task(name="bench.stamp")  # type: ignore[untyped-decorator,unused-ignore]
def stamp(sent_at: float) -> None:
    record_latency(sent_at)


class HueyAdapter(Adapter):
    name = "huey"
    db = DB
    worker_note = "huey_consumer -k process -w 2"

    def version(self) -> str:
        return f"huey {huey_lib.__version__}"

    def enqueue_one(self, n: int, queues: Sequence[str] = (QUEUE,), with_results: bool = False) -> None:
        for _ in range(n):
            noop()

    def enqueue_stamp(self) -> None:
        stamp(time.time())

    def worker_commands(self, processes: int, queues: Sequence[str]) -> list[list[str]]:
        return [[*python_tool("huey.bin.huey_consumer"), f"{__name__}.huey", "-k", "process", "-w", str(processes),
                 "-q"]]  # fmt: skip

    def remaining(self, queues: Sequence[str] = (QUEUE,)) -> int:
        return int(huey.pending_count())  # tasks a consumer is running are already popped: at most 2
