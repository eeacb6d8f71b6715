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
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from taskq.app import TaskQ
from taskq.errors import ConfigurationError, SoftTimeLimitExceeded, TimeLimitExceeded
from taskq.gevent_patch import patched
from taskq.revocations import Revocations
from taskq.worker.asyncio_pool import AsyncioPool
from taskq.worker.consumer import Consumer
from taskq.worker.timelimits import Alarm, Limits

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

    def __init__(self, app: TaskQ, queues: Sequence[str], concurrency: int) -> None:
        if not patched():
            raise ConfigurationError(NOT_PATCHED)
        self.revocations = Revocations(app)  # one cached set for all slots: one read per 0.5 s, not N
        super().__init__(app, queues, concurrency)

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
        return consumer
