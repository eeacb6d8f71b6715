"""Tasks as Celery's "Next steps" guide writes them, and two more for routing and beat."""

import os

from .celery import app


@app.task
def add(x, y):
    return x + y


@app.task
def mul(x, y):
    return x * y


@app.task
def xsum(numbers):
    return sum(numbers)


@app.task(bind=True, max_retries=3, default_retry_delay=0.1)
def flaky(self, tries_needed):
    """Fails until it has been retried ``tries_needed`` times."""
    if self.request.retries < tries_needed:
        raise self.retry(exc=ValueError("not yet"))
    return self.request.retries


@app.task(bind=True)
def where(self):
    """The queue this task was routed to (task_routes sends it to hipri)."""
    return self.request.delivery_info["routing_key"]


@app.task
def tick(label):
    """Run by beat: each run appends its label to the file PROJ_TICKS names."""
    with open(os.environ["PROJ_TICKS"], "a") as ticks:
        ticks.write(label + "\n")
    return label
