"""BlockingScheduler (``taskq beat``): start() runs the loop in the calling thread."""

from __future__ import annotations

import signal
import threading
from types import FrameType
from typing import Any

from taskq.beat import events as ev
from taskq.beat.schedulers.base import STATE_STOPPED, BaseScheduler


class BlockingScheduler(BaseScheduler):
    """start() runs the loop in the calling thread until shutdown() or SIGTERM/SIGINT."""

    def _start_loop(self) -> None:
        previous: dict[signal.Signals, Any] = {}
        if threading.current_thread() is threading.main_thread():
            for signum in (signal.SIGTERM, signal.SIGINT):
                previous[signum] = signal.signal(signum, self._on_signal)
        try:
            self.run_loop()
        finally:
            for signum, handler in previous.items():
                signal.signal(signum, handler)
            if self.running:  # stopped by a signal, not by shutdown()
                self.state = STATE_STOPPED
                for executor in list(self._executors.values()):
                    executor.shutdown(True)
                self._dispatch(ev.SchedulerEvent(ev.EVENT_SCHEDULER_SHUTDOWN))

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        self.core.stop()
