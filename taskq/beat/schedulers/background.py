"""BackgroundScheduler: start() returns at once and the loop runs in a thread of its own; and
the worker-embedded beat (``taskq worker --beat``), which is one."""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING, Any

from taskq.beat.schedulers.base import BaseScheduler

if TYPE_CHECKING:
    from taskq.app import TaskQ


class BackgroundScheduler(BaseScheduler):
    """start() returns at once; the loop runs in a daemon thread."""

    _thread: threading.Thread | None = None

    def _start_loop(self) -> None:
        self._thread = threading.Thread(target=self.run_loop, name="taskq-beat", daemon=True)
        self._thread.start()

    def _stop_loop(self, wait: bool) -> None:
        if wait and self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join()


def start_embedded(app: TaskQ, **options: Any) -> BackgroundScheduler:
    """For ``taskq worker --beat``: a beat thread inside the worker process. With several
    workers started with --beat, one leads (the same lock as separate beats)."""
    scheduler = BackgroundScheduler(app=app, **options)
    scheduler.start()
    return scheduler
