"""``-P gevent -c N``: N consumer greenlets in one process, for IO-bound tasks.

The process was monkey-patched before anything else was imported (taskq/gevent_patch.py),
so threads are greenlets, ``time.sleep`` and sockets yield to the gevent hub, and the threads
pool's code runs unchanged on greenlets: each of the N slots is a consumer loop with its own
claim keeper, fetching, admitting, storing and acking exactly as a consumer thread does
(claims, acks, warm shutdown, ``max_deliveries``, rate limits and revocations are the same
code). The claim keeper process (keeper.py) is forked as for the threads pool: a task that
never yields stops the whole hub, the claim keepers with it.

Each slot claims one message at a time (as ``-P asyncio``): N slow tasks spread over N slots.
``async def`` tasks run on one event loop in a greenlet, as on ``-P asyncio``.

Time limits: ``gevent.Timeout`` in the task's greenlet (``GreenletAlarm``): the limit's
exception is raised inside the task where it next yields to the hub (a patched sleep, a
socket read or write, a lock). A task that does not yield (CPU work, a C library that does
not go through gevent) sees it when it next yields, or never, and blocks every greenlet of
the process meanwhile: such tasks belong on prefork.

``revoke(terminate=True)``: a watcher greenlet throws ``Terminated`` into the greenlet running
the revoked task; the runner records it REVOKED and acks its message.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from taskq.app import TaskQ
from taskq.errors import BrokerError, ConfigurationError, SoftTimeLimitExceeded, TimeLimitExceeded
from taskq.gevent_patch import patched
from taskq.revocations import REFRESH, Revocations, Terminated
from taskq.worker.asyncio_pool import AsyncioPool
from taskq.worker.consumer import Consumer
from taskq.worker.timelimits import Alarm, Limits

if TYPE_CHECKING:
    from taskq.control.stats import SharedStats
    from taskq.control.steering import Steering

log = logging.getLogger("taskq.worker")
NOT_PATCHED = (
    "-P gevent must monkey-patch before the app is imported: start the worker as "
    "`taskq worker -P gevent` (or `python -m taskq worker -P gevent`), not from worker_pool in app code"
)


class GreenletAlarm(Alarm):
    """The soft and hard limits as ``gevent.Timeout``s thrown into the greenlet that armed them."""

    def __init__(self) -> None:
        super().__init__(hard_in_process=True)
        self._timeouts: list[Any] = []

    def arm(self, limits: Limits) -> None:
        import gevent  # type: ignore[import-untyped]

        self._limits = limits
        for delay, exc in ((limits.soft, SoftTimeLimitExceeded), (limits.hard, TimeLimitExceeded)):
            if delay is not None:
                timeout = gevent.Timeout(delay, exc(self._why(exc)))
                timeout.start()  # thrown into this greenlet, the one that runs the task
                self._timeouts.append(timeout)

    def disarm(self) -> None:
        for timeout in self._timeouts:
            timeout.close()  # a timer not fired yet never fires; one fired has raised already
        self._timeouts.clear()


class GeventPool(AsyncioPool):
    """The asyncio pool's shape: its consumer threads are greenlets here, and its event loop
    (``async def`` tasks) runs in a greenlet of its own: asyncio keeps one running loop per
    thread, and greenlets share their thread, so one loop per slot would collide."""

    def __init__(
        self, app: TaskQ, queues: Sequence[str], concurrency: int, *, steering: Steering | None = None,
        stats: SharedStats | None = None,
    ) -> None:
        if not patched():
            raise ConfigurationError(NOT_PATCHED)
        self.revocations = Revocations(app)  # one cached set for all slots: one read per 0.5 s, not N
        self.running: dict[Any, str] = {}  # greenlet -> the task id it runs now
        super().__init__(app, queues, concurrency, steering=steering, stats=stats)

    def run(self, on_ready: Callable[[], None] = lambda: None) -> int:
        import gevent

        def ready() -> None:
            if self.revocations.available:
                gevent.spawn(self._terminate_revoked)
            on_ready()

        return super().run(ready)

    def _track(self, task_id: str, limits: Limits) -> None:
        """The runner's hook, in the slot's greenlet, as a task starts ("" once it ended)."""
        import gevent

        if task_id:
            self.running[gevent.getcurrent()] = task_id
        else:
            self.running.pop(gevent.getcurrent(), None)

    def _terminate_revoked(self) -> None:
        """Every REFRESH seconds: throw ``Terminated`` into each greenlet running a task revoked
        with terminate=True; the runner records it REVOKED and acks its message."""
        import gevent

        hub = gevent.get_hub()
        while not self._stopping.is_set():
            gevent.sleep(REFRESH)
            if not self.running:
                continue
            try:
                terminated = self.revocations.terminated()
            except BrokerError as exc:
                log.warning("Could not read revocations (%s)", exc)
                continue
            for glet, task_id in list(self.running.items()):
                if task_id in terminated:
                    log.warning("Task [%s] revoked with terminate=True: stopping it", task_id)
                    hub.loop.run_callback(self._throw, glet, task_id)

    def _throw(self, glet: Any, task_id: str) -> None:
        """In the hub, so the greenlet is parked where it waits: thrown only if it still runs
        that task (it may have ended, and started another, since)."""
        if self.running.get(glet) == task_id:
            self.running.pop(glet, None)
            glet.throw(Terminated(f"task {task_id} revoked with terminate=True"))

    def install_signals(self) -> None:
        """A signal handler runs inside the hub, where nothing may block (a log line's lock,
        starting the cold-shutdown timer): it hands the signal to a greenlet of its own."""
        import signal

        import gevent

        def on(signum: int) -> Callable[[], None]:
            return lambda: gevent.spawn(self._on_signal, signum, None)

        for signum in (signal.SIGTERM, signal.SIGINT):
            gevent.signal_handler(signum, on(signum))
        gevent.signal_handler(signal.SIGQUIT, lambda: gevent.spawn(self._cold))

    def _consumer(self) -> Consumer:
        consumer = super()._consumer()
        consumer.runner.alarm = GreenletAlarm()
        consumer.runner.revocations = self.revocations
        consumer.runner.on_task = self._track
        return consumer
