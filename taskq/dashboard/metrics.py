"""``/metrics`` on the dashboard's port: the worker's metric families (taskq/metrics.py), filled
from what the dashboard sees: task counts and run times from the fleet's events, queue depths
and dead letters from its poller, workers up and busy from their heartbeats.

Counts start when the dashboard starts (as a Prometheus counter does after a restart).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from taskq import states
from taskq.dashboard.state import FleetState, TaskRecord
from taskq.metrics import queue_gauges, task_instruments, worker_gauges


class FleetCollector:
    def __init__(self, state: FleetState) -> None:
        self.state = state

    def collect(self) -> Iterator[Any]:
        now = self.state.clock()
        yield from worker_gauges((w.hostname, w.online(now), w.active) for w in self.state.workers())
        yield from queue_gauges((q.name, q.depth, q.dead) for q in self.state.queues())


class DashboardMetrics:
    def __init__(self, state: FleetState) -> None:
        from prometheus_client import CollectorRegistry

        self.registry = CollectorRegistry()
        self.tasks, self.runtime = task_instruments(self.registry)
        self.registry.register(FleetCollector(state))  # type: ignore[arg-type]
        state.on_finished(self.count)

    def count(self, task: TaskRecord) -> None:
        name = task.name or "?"
        self.tasks.labels(name, task.state).inc()
        if task.runtime is not None and task.state in (states.SUCCESS, states.FAILURE):
            self.runtime.labels(name).observe(task.runtime)

    def exposition(self) -> tuple[bytes, str]:
        from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

        return generate_latest(self.registry), CONTENT_TYPE_LATEST


def create_metrics(state: FleetState) -> DashboardMetrics | None:
    """None when prometheus_client is not installed (``/metrics`` then says so)."""
    try:
        return DashboardMetrics(state)
    except ImportError:
        return None
