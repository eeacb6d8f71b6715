"""The QtScheduler's hold on the Qt event loop (imported only with PySide6 present): a QObject
of the thread that started the scheduler, whose queued slot runs callbacks posted from any
thread on that thread's event loop, and which makes that loop's timers."""

from __future__ import annotations

from collections.abc import Callable

from PySide6.QtCore import QObject, Qt, QTimer, Signal, Slot

LONGEST_TIMER_MS = 2**31 - 1  # QTimer takes a signed 32-bit interval


class LoopBridge(QObject):
    post = Signal(object)

    def __init__(self) -> None:
        super().__init__()
        # Queued even from this thread: a callback posted by start() runs once the loop does.
        self.post.connect(self._run, Qt.ConnectionType.QueuedConnection)

    @Slot(object)
    def _run(self, callback: Callable[[], None]) -> None:
        callback()

    def timer(self, seconds: float, callback: Callable[[], None]) -> QTimer:
        timer = QTimer(self)
        timer.setSingleShot(True)
        timer.setTimerType(Qt.TimerType.PreciseTimer)
        timer.timeout.connect(callback)
        timer.start(min(max(int(seconds * 1000), 0), LONGEST_TIMER_MS))
        return timer
