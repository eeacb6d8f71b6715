"""A task rate-limited across every worker (-A global_rate_tasks:app; Redis brokers only)."""

from __future__ import annotations

from example_tasks import mark

from taskq import TaskQ

app = TaskQ("global_rate_tasks")


@app.task(rate_limit="10/s", rate_limit_scope="global")
def shared(key: str) -> str:
    mark("start", key)
    return key
