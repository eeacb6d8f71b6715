"""QtScheduler (the ``qt`` extra, PySide6): the loop's steps run on the Qt event loop of the
thread that calls start(), its wake-up is a QTimer there, as with APScheduler's; jobs run in
a thread pool, never on that thread."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from taskq.beat.schedulers.base import require_extra
from taskq.beat.schedulers.eventloop import EventLoopScheduler


class QtScheduler(EventLoopScheduler):
    """For Qt applications: nothing is scheduled before the event loop runs (``app.exec()``),
    and the GUI thread never waits on the schedule store. A job that touches widgets must
    hand over to the GUI thread (a signal, or ``QMetaObject.invokeMethod``), as with
    APScheduler's QtScheduler."""

    _bridge: Any = None

    def _prepare_start(self) -> None:
        require_extra("PySide6.QtCore", "qt", "QtScheduler")
        from taskq.beat.schedulers.qtbridge import LoopBridge

        self._bridge = LoopBridge()  # lives in this thread: its slots run on this thread's loop

    def _post(self, callback: Callable[[], None]) -> None:
        self._bridge.post.emit(callback)

    def _call_later(self, seconds: float, callback: Callable[[], None]) -> Any:
        return self._bridge.timer(seconds, callback)

    def _cancel(self, timer: Any) -> None:
        timer.stop()
        timer.deleteLater()
