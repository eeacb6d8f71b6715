"""Tasks routed as a Celery project routes them (-A routing_tasks:app): a topic exchange, a
fanout exchange, a direct one, and a queue by name. Each run marks the queue it came from."""

from __future__ import annotations

from typing import Any

from example_tasks import mark

from taskq import Exchange, Queue, TaskQ

EVENTS = Exchange("rt.events", type="topic")
BROADCAST = Exchange("rt.broadcast", type="fanout")
DIRECT = Exchange("rt.direct", type="direct")

ROUTING: dict[str, Any] = {
    "task_queues": [
        Queue("rt.audit", EVENTS, routing_key="audit.*"),
        Queue("rt.all-events", EVENTS, routing_key="#"),
        Queue("rt.fan-a", BROADCAST),
        Queue("rt.fan-b", BROADCAST),
        Queue("rt.direct-one", DIRECT, routing_key="d.one"),
        Queue("rt.reports"),
    ],
    "task_routes": {
        "routing_tasks.audit": {"exchange": "rt.events", "routing_key": "audit.login"},
        "routing_tasks.billing": {"exchange": "rt.events", "routing_key": "billing.paid"},
        "routing_tasks.announce": {"queue": "rt.fan-a"},  # a fanout queue: published to its exchange
        "routing_tasks.report_*": "rt.reports",
        "routing_tasks.lost": {"exchange": "rt.direct", "routing_key": "d.none"},
        "routing_tasks.flaky": {"exchange": "rt.events", "routing_key": "audit.flaky"},
    },
}
QUEUES = ",".join(q.name for q in ROUTING["task_queues"])

app = TaskQ("routing_tasks", **ROUTING)


def _run(task: Any, key: str) -> str:
    mark("start", f"{task.name.rsplit('.', 1)[1]}:{key}@{task.request.queue}")
    return key


@app.task(bind=True)
def audit(self: Any, key: str) -> str:
    return _run(self, key)


@app.task(bind=True)
def billing(self: Any, key: str) -> str:
    return _run(self, key)


@app.task(bind=True)
def announce(self: Any, key: str) -> str:
    return _run(self, key)


@app.task(bind=True)
def report_daily(self: Any, key: str) -> str:
    return _run(self, key)


@app.task(bind=True)
def lost(self: Any, key: str) -> str:
    return _run(self, key)


@app.task(bind=True)
def flaky(self: Any, key: str) -> str:
    """Retries once: the retry must come back to the queue it ran from, not to every bound queue."""
    _run(self, key)
    if self.request.retries == 0:
        raise self.retry(countdown=0.2)
    return key
