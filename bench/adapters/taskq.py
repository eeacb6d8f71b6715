"""taskq through its public API: ``task.delay()``, ``task.delay_many()``, ``taskq worker``.

While taskq's Redis broker or worker is missing, the column is skipped with that reason.
"""

from __future__ import annotations

import importlib
import sys
import time
from collections.abc import Sequence
from types import ModuleType
from typing import ClassVar

from bench.adapters.base import QUEUE, Adapter

DB = 8
MISSING = "taskq redis broker not available yet"


def _tasks() -> ModuleType:
    return importlib.import_module("bench.adapters.taskq_app")


class TaskqAdapter(Adapter):
    name = "taskq"
    db = DB
    bulk_api: ClassVar[str | None] = "task.delay_many (one round trip per chunk)"
    multi_queue = True
    worker_note = "taskq worker -P prefork -c 2"

    @staticmethod
    def unavailable() -> str | None:
        try:
            importlib.import_module("taskq.brokers.redis")
            app_module = _tasks()
        except ImportError:
            return MISSING
        try:
            importlib.import_module("taskq.cli.worker")
            importlib.import_module("taskq.worker.supervisor")
        except ImportError:
            return "taskq worker not available yet"
        if not hasattr(app_module.noop, "delay_many"):
            TaskqAdapter.bulk_api = None  # the adapter still runs; the bulk row stays empty
        return None

    def __init__(self) -> None:
        super().__init__()
        self.tasks = _tasks()

    def version(self) -> str:
        import taskq

        return f"taskq {taskq.__version__}"

    def enqueue_one(self, n: int, queues: Sequence[str] = (QUEUE,), with_results: bool = False) -> None:
        noop = self.tasks.noop
        if list(queues) == [QUEUE]:
            delay = noop.delay
            for _ in range(n):
                delay()
            return
        for i in range(n):
            noop.apply_async(queue=queues[i % len(queues)])

    def enqueue_bulk(self, n: int, queues: Sequence[str] = (QUEUE,), with_results: bool = False) -> None:
        noop = self.tasks.noop
        for offset, queue in enumerate(queues):
            noop.delay_many([()] * len(range(offset, n, len(queues))), queue=queue)

    def enqueue_stamp(self) -> None:
        self.tasks.stamp.delay(time.time())

    def worker_commands(self, processes: int, queues: Sequence[str]) -> list[list[str]]:
        return [
            [sys.executable, "-m", "taskq", "worker", "-A", "bench.adapters.taskq_app:app", "-Q", ",".join(queues),
             "-c", str(processes), "-P", "prefork", "-l", "warning"]
        ]  # fmt: skip

    def worker_env(self, with_results: bool, queues: Sequence[str]) -> dict[str, str]:
        return {**super().worker_env(with_results, queues), "TASKQ_TASK_IGNORE_RESULT": str(not with_results).lower()}

    def remaining(self, queues: Sequence[str] = (QUEUE,)) -> int:
        broker = self.tasks.app.broker  # XLEN counts claimed entries too: ack is XACK + XDEL
        return sum(broker.queue_length(queue) for queue in queues)

    def close(self) -> None:
        super().close()
        self.tasks.app.close()
