"""Taskiq through its normal API: ``await task.kiq()``, ``taskiq worker``, taskiq-redis.

The broker is taskiq-redis's RedisStreamBroker (acknowledges after the task, so queued plus
pending counts what is left; its ListQueueBroker pops messages into worker memory, where a
drain could not be timed). Taskiq has no bulk enqueue and one queue per broker.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from importlib.metadata import version as dist_version

from taskiq import AsyncBroker
from taskiq_redis import RedisAsyncResultBackend, RedisStreamBroker

from bench.adapters.base import QUEUE, Adapter, env_results, env_url, python_tool, record_latency
from bench.adapters.peer_keys import TASKIQ_DB as DB
from bench.adapters.peer_keys import TASKIQ_STREAM as STREAM
from bench.adapters.peer_keys import taskiq_prepare, taskiq_remaining


def make_broker(url: str, with_results: bool) -> AsyncBroker:
    stream_broker = RedisStreamBroker(url)
    if with_results:
        return stream_broker.with_result_backend(RedisAsyncResultBackend(url, result_ex_time=86400))
    return stream_broker


broker = make_broker(env_url(DB), env_results())


@broker.task(task_name="bench.noop")
async def noop() -> None:
    return None


@broker.task(task_name="bench.stamp")
async def stamp(sent_at: float) -> None:
    record_latency(sent_at)


class TaskiqAdapter(Adapter):
    name = "taskiq"
    db = DB
    worker_note = "taskiq worker --workers 2 (RedisStreamBroker, default ack when saved)"
    # taskiq 0.13's worker processes log "Stopping prefetching messages" on SIGTERM but do not
    # exit (seen waiting 20 s); they are idle by then, so SIGKILL sooner keeps the run short.
    stop_grace = 2.0

    def __init__(self) -> None:
        super().__init__()
        self.loop = asyncio.new_event_loop()
        self.loop.run_until_complete(broker.startup())

    def version(self) -> str:
        return f"taskiq {dist_version('taskiq')}, taskiq-redis {dist_version('taskiq-redis')}"

    def reset(self) -> None:
        super().reset()
        taskiq_prepare(self.redis)

    def enqueue_one(self, n: int, queues: Sequence[str] = (QUEUE,), with_results: bool = False) -> None:
        async def send() -> None:
            for _ in range(n):
                await noop.kiq()

        self.loop.run_until_complete(send())

    def enqueue_stamp(self) -> None:
        self.loop.run_until_complete(stamp.kiq(time.time()))

    def worker_commands(self, processes: int, queues: Sequence[str]) -> list[list[str]]:
        return [[*python_tool("taskiq"), "worker", f"{__name__}:broker", "--workers", str(processes),
                 "--log-level", "WARNING"]]  # fmt: skip

    def remaining(self, queues: Sequence[str] = (QUEUE,)) -> int:
        return taskiq_remaining(self.redis)

    def close(self) -> None:
        super().close()
        self.redis.delete(STREAM)
        self.loop.run_until_complete(broker.shutdown())
        self.loop.close()
