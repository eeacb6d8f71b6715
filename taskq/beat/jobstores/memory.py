"""MemoryJobStore: jobs in this process only (APScheduler's default without an app)."""

from __future__ import annotations

from taskq.beat.core.stores.memory import MemoryScheduleStore


class MemoryJobStore(MemoryScheduleStore):
    persistent = False

    def __init__(self) -> None:
        super().__init__("memory://")
