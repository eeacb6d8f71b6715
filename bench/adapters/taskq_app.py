"""The taskq app the benchmark's producer and workers share (``-A bench.adapters.taskq_app:app``).

Kept apart from the adapter so that the harness can tell "taskq not built yet" from an
import error: only this module imports taskq at import time.
"""

from __future__ import annotations

import os

from bench.adapters.base import QUEUE, env_results, env_url, record_latency
from taskq import TaskQ

if os.environ.get("BENCH_LATENCY_PROBE") == "1":  # bench.latency_compare --probe
    from bench import latency_probe

    latency_probe.install()

DB = 8

URL = env_url(DB)
_results = env_results()
# Without results the backend would default to the broker's Redis, so turn storing off.
app = TaskQ("bench", broker=URL, backend=URL, task_default_queue=QUEUE, task_ignore_result=not _results)


@app.task(name="bench.noop")
def noop() -> None:
    return None


@app.task(name="bench.stamp")
def stamp(sent_at: float) -> None:
    record_latency(sent_at)


@app.task(name="bench.anoop")
async def anoop() -> None:
    return None
