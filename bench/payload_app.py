"""The app ``python -m bench.payloads`` runs: one task taking a big string argument,
results stored on the same Redis (``BENCH_REDIS_URL``)."""

from __future__ import annotations

from bench.adapters.base import env_url
from taskq import TaskQ

DB = 5
URL = env_url(DB)
app = TaskQ("payloads", broker=URL, backend=URL, task_default_queue="payloads")


@app.task(name="bench.payload")
def payload(data: str) -> int:
    return len(data)
