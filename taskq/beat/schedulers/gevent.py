"""GeventScheduler (the ``gevent`` extra): the loop's steps are greenlets on the gevent hub of
the thread that calls start(), its wake-up a greenlet spawned for the due time, as with
APScheduler's; jobs run as greenlets on that hub."""

from __future__ import annotations

import concurrent.futures as cf
from collections.abc import Callable
from typing import Any

from taskq.beat.executors.base import BaseExecutor
from taskq.beat.schedulers.base import require_extra
from taskq.beat.schedulers.eventloop import EventLoopScheduler


class GeventScheduler(EventLoopScheduler):
    """Jobs run as greenlets on the hub of the thread that calls start() (which must keep
    yielding to gevent, e.g. ``gevent.sleep`` or a gevent server); nothing is scheduled while
    that thread blocks the hub."""

    _hub: Any = None

    def _prepare_start(self) -> None:
        self._hub = require_extra("gevent", "gevent", "GeventScheduler").get_hub()

    def _create_default_executor(self) -> BaseExecutor:
        from taskq.beat.executors.gevent import GeventExecutor

        return GeventExecutor()

    def _new_worker(self) -> cf.Executor:
        # gevent's own pool: real threads even where the application monkey-patched threading.
        from gevent.threadpool import ThreadPoolExecutor  # type: ignore[import-untyped]

        worker: cf.Executor = ThreadPoolExecutor(max_workers=1)
        return worker

    def _post(self, callback: Callable[[], None]) -> None:
        import gevent

        self._hub.loop.run_callback_threadsafe(gevent.spawn, callback)

    def _call_later(self, seconds: float, callback: Callable[[], None]) -> Any:
        import gevent

        return gevent.spawn_later(seconds, callback)

    def _cancel(self, timer: Any) -> None:
        import gevent

        if timer is not gevent.getcurrent():  # the timer's own greenlet is the step: let it run
            timer.kill(block=False)
