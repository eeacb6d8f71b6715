"""Tasks for ``taskq demo``: a worker imports them as ``taskq.demo:app``."""

from __future__ import annotations

import asyncio
import os
import time

from taskq.app import TaskQ
from taskq.beat import every
from taskq.task import Task

app = TaskQ("taskq.demo")  # broker from TASKQ_BROKER_URL, set by the demo command


@app.task
def add(a: int, b: int) -> int:
    return a + b


@app.task(bind=True, max_retries=3)
def flaky(self: Task[[], str]) -> str:
    """Fails twice, then succeeds: the worker retries it with a short delay."""
    if self.request.retries < 2:
        raise self.retry(exc=ConnectionError("service unavailable"), countdown=0.5)
    return f"succeeded on attempt {self.request.retries + 1}"


@app.task
def divide(a: float, b: float) -> float:
    return a / b


@app.task
async def slow_square(x: int) -> int:
    await asyncio.sleep(0.1)
    return x * x


@app.periodic(every(seconds=1))
def heartbeat() -> None:
    """Runs every second through the worker's embedded beat; appends a line the demo counts."""
    path = os.environ.get("TASKQ_DEMO_HEARTBEATS")
    if path:
        with open(path, "a") as fh:
            fh.write(f"{time.time()}\n")
