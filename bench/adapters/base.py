"""The small interface every library's adapter implements, and what they share.

An adapter drives one library through its normal API on its own Redis database (never db 0,
which the test suites use): it enqueues no-op tasks, starts and stops that library's own
worker command as subprocesses, and says how many tasks are still queued or claimed.

Task-side helpers (``record_latency``) run inside the workers; they read the Redis URL from
``BENCH_REDIS_URL``, which the harness sets for every worker it starts.
"""

from __future__ import annotations

import os
import sys
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from typing import ClassVar

import redis

from bench.procs import WorkerGroup

DEFAULT_REDIS = "redis://127.0.0.1:6379"
QUEUE = "bench"
LATENCY_KEY = "bench:latency"  # list of seconds from enqueue to task start, one per stamp task


def redis_url(db: int) -> str:
    base = os.environ.get("BENCH_REDIS", DEFAULT_REDIS).rstrip("/")
    return f"{base}/{db}"


def env_url(default_db: int) -> str:
    """Inside a worker: the URL the harness chose; in the harness: the adapter's default."""
    return os.environ.get("BENCH_REDIS_URL", redis_url(default_db))


def env_results() -> bool:
    return os.environ.get("BENCH_RESULTS", "0") == "1"


def env_queues() -> list[str]:
    return os.environ.get("BENCH_QUEUES", QUEUE).split(",")


def queue_names(count: int) -> list[str]:
    return [QUEUE] if count == 1 else [f"{QUEUE}{i}" for i in range(count)]


_task_client: redis.Redis | None = None
on_task_start: Callable[[], None] | None = None  # bench/latency_probe.py, when it is on


def record_latency(sent_at: float) -> None:
    """Called first thing in a stamp task: push the time from enqueue to start."""
    global _task_client
    started = time.time()
    if on_task_start is not None:
        on_task_start()
    if _task_client is None:
        _task_client = redis.Redis.from_url(os.environ["BENCH_REDIS_URL"])
    _task_client.rpush(LATENCY_KEY, started - sent_at)


def python_tool(module: str) -> list[str]:
    """Run a library's console script as ``python -m``, so the same interpreter is used."""
    return [sys.executable, "-m", module]


class Adapter(ABC):
    """One library under test. Subclasses set the class attributes and the abstract methods."""

    name: ClassVar[str]
    db: ClassVar[int]
    bulk_api: ClassVar[str | None] = None  # what enqueue_bulk calls; None: the library has none
    slow_drain: ClassVar[bool] = False  # drains below 500/s: the harness gives it fewer tasks
    multi_queue: ClassVar[bool] = False  # one worker can consume several queues
    worker_note: ClassVar[str] = ""  # how "2 worker processes" maps onto this library
    stop_grace: ClassVar[float] = 10.0  # seconds between SIGTERM and SIGKILL

    def __init__(self) -> None:
        if self.db == 0:
            raise ValueError("db 0 belongs to the test suites; benchmarks flush their database")
        self.url = redis_url(self.db)
        self.redis = redis.Redis.from_url(self.url)
        self.workers = WorkerGroup(self.name, self.stop_grace)

    @staticmethod
    def unavailable() -> str | None:
        """Why this library cannot run here (not installed, not built yet), or None."""
        return None

    def version(self) -> str:
        return ""

    def reset(self) -> None:
        """Forget every task, result and key of this library (its own database only)."""
        self.redis.flushdb()

    @abstractmethod
    def enqueue_one(self, n: int, queues: Sequence[str] = (QUEUE,), with_results: bool = False) -> None:
        """Enqueue n no-op tasks with one API call per task, round-robin over queues."""

    def enqueue_bulk(self, n: int, queues: Sequence[str] = (QUEUE,), with_results: bool = False) -> None:
        """Enqueue n no-op tasks through the library's bulk API (``bulk_api``)."""
        raise NotImplementedError(f"{self.name} has no bulk enqueue API")

    def fill(self, n: int, queues: Sequence[str] = (QUEUE,), with_results: bool = False) -> None:
        """Queue n tasks as fast as the library allows, before a drain."""
        if self.bulk_api:
            self.enqueue_bulk(n, queues, with_results)
        else:
            self.enqueue_one(n, queues, with_results)

    @abstractmethod
    def enqueue_stamp(self) -> None:
        """Enqueue one task that calls record_latency(time of this call)."""

    @abstractmethod
    def worker_commands(self, processes: int, queues: Sequence[str]) -> list[list[str]]:
        """The library's own worker command line(s) for ``processes`` worker processes."""

    def worker_env(self, with_results: bool, queues: Sequence[str]) -> dict[str, str]:
        return {
            "BENCH_REDIS_URL": self.url,
            "BENCH_RESULTS": "1" if with_results else "0",
            "BENCH_QUEUES": ",".join(queues),
        }

    def start_workers(self, processes: int, with_results: bool = False, queues: Sequence[str] = (QUEUE,)) -> None:
        self.workers.start(self.worker_commands(processes, queues), self.worker_env(with_results, queues))

    def stop_workers(self) -> None:
        self.workers.stop()

    @abstractmethod
    def remaining(self, queues: Sequence[str] = (QUEUE,)) -> int:
        """Tasks not finished yet: queued plus claimed and not yet acknowledged."""

    def close(self) -> None:
        self.stop_workers()
        self.reset()
        self.redis.close()
