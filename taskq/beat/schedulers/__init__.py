"""The scheduler flavours, at APScheduler 3's module paths: ``taskq.beat.schedulers.blocking``
(BlockingScheduler), ``.background``, ``.asyncio``, ``.gevent``, ``.twisted``, ``.tornado``,
``.qt``, and ``.base`` (BaseScheduler, STATE_*). This package holds, as APScheduler's does, the
two errors of start() and shutdown(); ``from taskq.beat.schedulers import BackgroundScheduler``
(taskq's earlier path) still works, each flavour imported on first use.
"""

from __future__ import annotations

import importlib
from typing import Any

from taskq.errors import TaskQError


class SchedulerAlreadyRunningError(TaskQError):
    """start() on a scheduler that is running."""

    def __init__(self) -> None:
        super().__init__("Scheduler is already running")


class SchedulerNotRunningError(TaskQError):
    """shutdown(), pause() or resume() on a scheduler that is not running."""

    def __init__(self) -> None:
        super().__init__("Scheduler is not running")


_FLAVOURS = {
    "BaseScheduler": "base",
    "BlockingScheduler": "blocking",
    "BackgroundScheduler": "background",
    "AsyncIOScheduler": "asyncio",
    "GeventScheduler": "gevent",
    "TwistedScheduler": "twisted",
    "TornadoScheduler": "tornado",
    "QtScheduler": "qt",
}


def __getattr__(name: str) -> Any:
    module = _FLAVOURS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{module}"), name)


__all__ = ["SchedulerAlreadyRunningError", "SchedulerNotRunningError"]
