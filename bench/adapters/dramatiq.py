"""Dramatiq through its normal API: ``actor.send()``, the ``dramatiq`` CLI, RedisBroker.

Dramatiq has no bulk enqueue (``group(...).run()`` sends one message at a time), so its
bulk row is empty. Results: the Results middleware with its RedisBackend.
"""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from typing import Any

import dramatiq
from dramatiq.brokers.redis import RedisBroker
from dramatiq.results import Results
from dramatiq.results.backends import RedisBackend

from bench.adapters.base import QUEUE, Adapter, env_queues, env_results, env_url, python_tool, record_latency

DB = 11
# Dramatiq's default is 8 threads per process; BENCH_DRAMATIQ_THREADS overrides it.
THREADS = os.environ.get("BENCH_DRAMATIQ_THREADS", "8")

_results = env_results()
broker = RedisBroker(url=env_url(DB))  # type: ignore[no-untyped-call,unused-ignore]
if _results:
    broker.add_middleware(Results(backend=RedisBackend(url=env_url(DB))))  # type: ignore[no-untyped-call,unused-ignore]
dramatiq.set_broker(broker)
for _queue in env_queues():
    broker.declare_queue(_queue)
_options: dict[str, Any] = {"store_results": True} if _results else {}


@dramatiq.actor(actor_name="bench.noop", queue_name=QUEUE, **_options)
def noop() -> None:
    return None


@dramatiq.actor(actor_name="bench.stamp", queue_name=QUEUE)
def stamp(sent_at: float) -> None:
    record_latency(sent_at)


class DramatiqAdapter(Adapter):
    name = "dramatiq"
    db = DB
    multi_queue = True
    worker_note = f"dramatiq --processes 2 --threads {THREADS}"

    def version(self) -> str:
        return f"dramatiq {dramatiq.__version__}"

    def enqueue_one(self, n: int, queues: Sequence[str] = (QUEUE,), with_results: bool = False) -> None:
        if list(queues) == [QUEUE]:
            send = noop.send
            for _ in range(n):
                send()
            return
        for i in range(n):
            broker.enqueue(noop.message().copy(queue_name=queues[i % len(queues)]))

    def enqueue_stamp(self) -> None:
        stamp.send(time.time())

    def worker_commands(self, processes: int, queues: Sequence[str]) -> list[list[str]]:
        return [
            [*python_tool("dramatiq"), __name__, "--processes", str(processes), "--threads", THREADS,
             "--queues", *queues]
        ]  # fmt: skip

    def remaining(self, queues: Sequence[str] = (QUEUE,)) -> int:
        # "<ns>:<queue>.msgs" holds every message until it is acknowledged.
        pipe = self.redis.pipeline(transaction=False)
        for queue in queues:
            pipe.hlen(f"dramatiq:{queue}.msgs")
        return sum(int(v) for v in pipe.execute())
