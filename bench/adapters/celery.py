"""Celery through its normal API: ``task.delay()``, ``group(...).apply_async()``, ``celery worker``.

Broker and result backend are kombu's Redis transport and Celery's Redis backend. Celery's
defaults otherwise (prefetch multiplier 4, early acks, mingle/gossip/heartbeat on).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

from celery import Celery, group

from bench.adapters.base import QUEUE, Adapter, env_results, env_url, python_tool, record_latency

DB = 10


def make_app(url: str, with_results: bool) -> Celery:
    celery_app = Celery("bench", broker=url, backend=url if with_results else None)
    celery_app.conf.update(
        task_default_queue=QUEUE,
        task_ignore_result=not with_results,
        broker_connection_retry_on_startup=True,
        worker_hijack_root_logger=False,
    )
    return celery_app


app = make_app(env_url(DB), env_results())


@app.task(name="bench.noop")  # type: ignore[untyped-decorator,unused-ignore]
def noop() -> None:
    return None


@app.task(name="bench.stamp")  # type: ignore[untyped-decorator,unused-ignore]
def stamp(sent_at: float) -> None:
    record_latency(sent_at)


class CeleryAdapter(Adapter):
    name = "celery"
    db = DB
    bulk_api = "group(noop.si() ...).apply_async()"
    multi_queue = True
    worker_note = "celery worker -P prefork -c 2 (defaults: prefetch x4, early ack)"

    def version(self) -> str:
        import celery

        return f"celery {celery.__version__}"

    # The producer's app is made before the runner says whether results are stored, and Celery
    # writes the app's task_ignore_result into each message (the worker obeys the message): the
    # calls say it themselves, or a "results stored" row stores none.
    def enqueue_one(self, n: int, queues: Sequence[str] = (QUEUE,), with_results: bool = False) -> None:
        if list(queues) == [QUEUE] and not with_results:
            delay = noop.delay
            for _ in range(n):
                delay()
            return
        send = noop.apply_async
        for i in range(n):
            send(queue=queues[i % len(queues)], ignore_result=not with_results)

    def enqueue_bulk(self, n: int, queues: Sequence[str] = (QUEUE,), with_results: bool = False) -> None:
        signatures: list[Any] = [
            noop.si().set(queue=queues[i % len(queues)], ignore_result=not with_results) for i in range(n)
        ]
        group(signatures).apply_async()

    def enqueue_stamp(self) -> None:
        stamp.delay(time.time())

    def worker_commands(self, processes: int, queues: Sequence[str]) -> list[list[str]]:
        return [
            [*python_tool("celery"), "-A", f"{__name__}:app", "worker", "-Q", ",".join(queues),
             "-c", str(processes), "-P", "prefork", "-l", "warning"]
        ]  # fmt: skip

    def remaining(self, queues: Sequence[str] = (QUEUE,)) -> int:
        pipe = self.redis.pipeline(transaction=False)
        for queue in queues:
            pipe.llen(queue)
        pipe.hlen("unacked")  # kombu's reserved-but-unacknowledged messages
        return sum(int(v) for v in pipe.execute())
