"""QtScheduler (the ``qt`` extra, PySide6)."""

from __future__ import annotations

from taskq.beat.schedulers.background import BackgroundScheduler
from taskq.beat.schedulers.base import require_extra


class QtScheduler(BackgroundScheduler):
    """For Qt applications (PySide6): jobs run in a thread pool, never on the GUI thread, so
    the event loop stays responsive; a job that touches widgets must hand over to the GUI
    thread (a signal, or ``QMetaObject.invokeMethod``), as with APScheduler's QtScheduler."""

    def _prepare_start(self) -> None:
        require_extra("PySide6.QtCore", "qt", "QtScheduler")
