"""RQ through its normal API: ``Queue.enqueue``, ``Queue.enqueue_many``, ``rq worker-pool``.

RQ's default worker forks a work horse per job, so it drains far below 500/s and gets the
smaller drain count. Without results, jobs are enqueued with ``result_ttl=0`` (deleted on
success); with results, RQ's default ``result_ttl`` (500 s).
"""

from __future__ import annotations

import time
from collections.abc import Sequence

import rq
from redis import Redis
from rq import Queue
from rq.registry import StartedJobRegistry

from bench.adapters.base import QUEUE, Adapter, python_tool, record_latency

DB = 12
CHUNK = 1000


def noop() -> None:
    return None


def stamp(sent_at: float) -> None:
    record_latency(sent_at)


def _ttl(with_results: bool) -> int | None:
    return None if with_results else 0  # None: RQ's default result_ttl


class RQAdapter(Adapter):
    name = "rq"
    db = DB
    bulk_api = "Queue.enqueue_many (1,000 per call)"
    slow_drain = True
    multi_queue = True
    worker_note = "rq worker-pool -n 2 (default Worker: a forked work horse per job)"

    def __init__(self) -> None:
        super().__init__()
        self.connection = Redis.from_url(self.url)

    def version(self) -> str:
        return f"rq {rq.__version__}"

    def _queues(self, names: Sequence[str]) -> list[Queue]:
        return [Queue(name, connection=self.connection) for name in names]

    def enqueue_one(self, n: int, queues: Sequence[str] = (QUEUE,), with_results: bool = False) -> None:
        targets = self._queues(queues)
        ttl = _ttl(with_results)
        for i in range(n):
            targets[i % len(targets)].enqueue(noop, result_ttl=ttl)

    def enqueue_bulk(self, n: int, queues: Sequence[str] = (QUEUE,), with_results: bool = False) -> None:
        targets = self._queues(queues)
        ttl = _ttl(with_results)
        for offset, target in enumerate(targets):
            share = len(range(offset, n, len(targets)))
            for start in range(0, share, CHUNK):
                count = min(CHUNK, share - start)
                target.enqueue_many([Queue.prepare_data(noop, result_ttl=ttl) for _ in range(count)])

    def enqueue_stamp(self) -> None:
        self._queues([QUEUE])[0].enqueue(stamp, time.time(), result_ttl=0)

    def worker_commands(self, processes: int, queues: Sequence[str]) -> list[list[str]]:
        return [[*python_tool("rq.cli"), "worker-pool", "-n", str(processes), "-u", self.url, "-q", *queues]]

    def remaining(self, queues: Sequence[str] = (QUEUE,)) -> int:
        left = 0
        for queue in self._queues(queues):
            left += queue.count + int(self.redis.llen(queue.intermediate_queue_key))
            left += StartedJobRegistry(queue=queue).count
        return left
