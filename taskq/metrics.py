"""Prometheus metrics of a worker (``taskq worker --metrics-port 9808``), through prometheus_client.

Multi-process correct for prefork: every process of the worker writes its counters and
histograms to files in ``PROMETHEUS_MULTIPROC_DIR`` (a fresh temporary folder unless the
user set one), and the scrape, served by the worker's control process, adds them up with
``MultiProcessCollector``; a child that died keeps its counts. Live values (queue depth,
dead letters, running tasks, prefetched messages, worker up) are read from the broker and
the shared statistics at scrape time. Beat lag (``-B``): how late each due instant was
submitted, observed by the beat of this worker (a child in prefork) through beat_init.

``prepare()`` must run before prometheus_client is first imported: it picks its
multi-process storage on import.
"""

from __future__ import annotations

import glob
import importlib
import logging
import os
import shutil
import socket
import tempfile
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import TYPE_CHECKING, Any

from taskq import signals

if TYPE_CHECKING:
    from taskq.app import TaskQ
    from taskq.control.stats import SharedStats

log = logging.getLogger("taskq.metrics")
ENV = "PROMETHEUS_MULTIPROC_DIR"
LAG_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 60.0, float("inf"))
RUNTIME_BUCKETS = (0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1.0, 5.0, 10.0, 30.0, 60.0, 300.0, float("inf"))


def prepare() -> str | None:
    """Point prometheus_client at a folder of its own; returns it when taskq made it (to remove)."""
    if os.environ.get(ENV):
        return None
    folder = tempfile.mkdtemp(prefix="taskq-metrics-")
    os.environ[ENV] = folder
    return folder


def check_port(port: int, address: str = "") -> str | None:
    """None when the port can be served, else why not (checked before the worker starts)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((address, port))
        except OSError as exc:
            return f"metrics port {port} cannot be served: {exc.strerror or exc}"
    return None


class WorkerMetrics:
    def __init__(self, app: TaskQ, hostname: str, queues: Sequence[str], port: int, own_dir: str | None) -> None:
        self.app = app
        self.hostname = hostname
        self.queues = list(queues)
        self.port = port
        self.own_dir = own_dir
        from prometheus_client import Histogram

        self.tasks, self.runtime = task_instruments()
        self.beat_lag = Histogram(
            "taskq_beat_lag_seconds", "How late beat submitted a due instant (seconds after its due time)",
            buckets=LAG_BUCKETS,
        )
        self._started = threading.local()

    # -- the consumers' side (receivers of taskq.signals) ---------------------------------
    def install(self) -> None:
        signals.task_prerun.connect(self._on_prerun)
        signals.task_postrun.connect(self._on_postrun)
        signals.task_revoked.connect(self._on_revoked)
        signals.task_rejected.connect(self._on_rejected)
        signals.beat_init.connect(self._on_beat_init)

    def uninstall(self) -> None:
        signals.task_prerun.disconnect(self._on_prerun)
        signals.task_postrun.disconnect(self._on_postrun)
        signals.task_revoked.disconnect(self._on_revoked)
        signals.task_rejected.disconnect(self._on_rejected)
        signals.beat_init.disconnect(self._on_beat_init)

    def _on_prerun(self, **_: Any) -> None:
        self._started.at = time.perf_counter()

    def _on_postrun(self, task: Any, state: str, **_: Any) -> None:
        name = getattr(task, "name", str(task))
        self.tasks.labels(name, state).inc()
        started = getattr(self._started, "at", None)
        if started is not None:
            self.runtime.labels(name).observe(time.perf_counter() - started)
            self._started.at = None

    def _on_revoked(self, request: Any, **_: Any) -> None:
        self.tasks.labels(getattr(request, "task", "?"), "REVOKED").inc()

    def _on_rejected(self, **_: Any) -> None:
        self.tasks.labels("?", "REJECTED").inc()

    def _on_beat_init(self, sender: Any, **_: Any) -> None:
        add = getattr(sender, "add_beat_listener", None)  # taskq's schedulers; another sender has none
        if add is not None:
            add(self._on_beat_event)

    def _on_beat_event(self, event: Any) -> None:
        from taskq.beat.core.hook import SUBMITTED

        lateness = event.detail.get("lateness") if event.kind == SUBMITTED else None
        if isinstance(lateness, (int, float)):
            self.beat_lag.observe(max(float(lateness), 0.0))

    # -- the control process's side -------------------------------------------------------
    def serve(self, stats: SharedStats, queues: Callable[[], Sequence[str]] | None = None) -> None:
        """Serve /metrics from the control side; ``queues`` gives the queues consumed now
        (add_consumer/cancel_consumer change them), else the ones the worker started with."""
        from prometheus_client import CollectorRegistry, start_http_server

        # What a scrape imports, imported now: in a prefork supervisor this runs before the
        # pool forks, and a fork during a scrape's first import would leave its lock held.
        for module in ("prometheus_client.core", "prometheus_client.multiprocess"):
            importlib.import_module(module)
        registry = CollectorRegistry()
        registry.register(ProcessFilesCollector(os.environ[ENV]))  # type: ignore[arg-type]
        registry.register(LiveCollector(self, stats, queues or (lambda: self.queues)))  # type: ignore[arg-type]
        start_http_server(self.port, registry=registry)
        log.info("Metrics on http://0.0.0.0:%d/metrics", self.port)

    def cleanup(self) -> None:
        if self.own_dir:
            shutil.rmtree(self.own_dir, ignore_errors=True)


class ProcessFilesCollector:
    """prometheus_client's multi-process sum over the processes' files, leaving out a file a
    process is creating this instant: it is empty until prometheus_client sizes it, and
    reading one failed the whole scrape with a 500 (struct.error) now and then."""

    def __init__(self, folder: str) -> None:
        self.folder = folder

    def collect(self) -> Iterable[Any]:
        from prometheus_client.multiprocess import MultiProcessCollector

        files = []
        for name in glob.glob(os.path.join(self.folder, "*.db")):
            try:
                if os.path.getsize(name) >= 8:  # the used-bytes header and the first entry's offset
                    files.append(name)
            except OSError:  # a dead child's file removed meanwhile
                continue
        return MultiProcessCollector.merge(files, accumulate=True)  # type: ignore[no-untyped-call,no-any-return]


class LiveCollector:
    """Values read when Prometheus scrapes: queue depth, dead letters, running and prefetched
    tasks, up."""

    def __init__(self, metrics: WorkerMetrics, stats: SharedStats, queues: Callable[[], Sequence[str]]) -> None:
        self.metrics = metrics
        self.stats = stats
        self.queues = queues
        self._lock = threading.Lock()  # scrapes may overlap; the broker connection is one

    def collect(self) -> Iterator[Any]:
        from prometheus_client.core import GaugeMetricFamily

        yield from worker_gauges([(self.metrics.hostname, True, len(self.stats.active()))])
        prefetched = GaugeMetricFamily(
            "taskq_worker_prefetched_messages", "Messages claimed by the consumers and not started yet (reserved)",
            labels=["hostname"],
        )
        prefetched.add_metric([self.metrics.hostname], float(self.stats.prefetched()))
        yield prefetched
        from taskq.worker.keeper import FORK_GUARD  # the app's broker is the children's too

        broker = self.metrics.app.broker
        rows = []
        with self._lock, FORK_GUARD:
            for queue in self.queues():
                try:
                    rows.append((queue, broker.queue_length(queue), broker.dead_letter_count(queue)))
                except Exception as exc:  # a scrape must answer even when the broker does not
                    log.warning("Metrics: queue %s unreadable (%s)", queue, exc)
        yield from queue_gauges(rows)


# -- the metric families, one definition for the worker's /metrics and the dashboard's --------
def task_instruments(registry: Any = None) -> tuple[Any, Any]:
    """``taskq_tasks_total`` (by task and state) and ``taskq_task_runtime_seconds``; in the
    default registry (multi-process aware) unless ``registry`` is given."""
    from prometheus_client import REGISTRY, Counter, Histogram

    where = REGISTRY if registry is None else registry
    tasks = Counter("taskq_tasks", "Tasks finished, by name and state", ["task", "state"], registry=where)
    runtime = Histogram(
        "taskq_task_runtime_seconds", "Task run time", ["task"], buckets=RUNTIME_BUCKETS, registry=where
    )
    return tasks, runtime


def worker_gauges(rows: Iterable[tuple[str, bool, int]]) -> Iterator[Any]:
    """``taskq_worker_up`` and ``taskq_worker_active_tasks`` from (hostname, up, running tasks)."""
    from prometheus_client.core import GaugeMetricFamily

    up = GaugeMetricFamily("taskq_worker_up", "1 while the worker runs", labels=["hostname"])
    active = GaugeMetricFamily("taskq_worker_active_tasks", "Tasks running now", labels=["hostname"])
    for hostname, is_up, running in rows:
        up.add_metric([hostname], 1.0 if is_up else 0.0)
        active.add_metric([hostname], float(running))
    yield up
    yield active


def queue_gauges(rows: Iterable[tuple[str, int | None, int | None]]) -> Iterator[Any]:
    """``taskq_queue_depth`` and ``taskq_dead_letters`` from (queue, depth, dead letters); an
    unknown value (None) is left out."""
    from prometheus_client.core import GaugeMetricFamily

    depth = GaugeMetricFamily("taskq_queue_depth", "Messages waiting in a queue", labels=["queue"])
    dead = GaugeMetricFamily("taskq_dead_letters", "Dead-lettered messages of a queue", labels=["queue"])
    for queue, messages, letters in rows:
        if messages is not None:
            depth.add_metric([queue], float(messages))
        if letters is not None:
            dead.add_metric([queue], float(letters))
    yield depth
    yield dead
