"""GeventScheduler (the ``gevent`` extra)."""

from __future__ import annotations

from taskq.beat.executors.base import BaseExecutor
from taskq.beat.schedulers.background import BackgroundScheduler
from taskq.beat.schedulers.base import require_extra


class GeventScheduler(BackgroundScheduler):
    """Jobs run as greenlets on the hub of the thread that calls start() (which must keep
    yielding to gevent, e.g. ``gevent.sleep`` or a gevent server)."""

    def _prepare_start(self) -> None:
        require_extra("gevent", "gevent", "GeventScheduler")

    def _create_default_executor(self) -> BaseExecutor:
        from taskq.beat.executors.gevent import GeventExecutor

        return GeventExecutor()
