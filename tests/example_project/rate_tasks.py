"""Rate-limited tasks (-A rate_tasks:app); global ones are in global_rate_tasks.py, because
a global rate limit needs a Redis broker and the worker refuses to start with one elsewhere."""

from __future__ import annotations

from example_tasks import mark

from taskq import TaskQ

app = TaskQ("rate_tasks")


@app.task(rate_limit="10/s")
def per_worker(key: str) -> str:
    mark("start", key)
    return key


@app.task
def unlimited(key: str) -> str:
    mark("start", key)
    return key
