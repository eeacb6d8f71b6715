"""SQLiteJobStore: jobs in a sqlite file (taskq's sqlite schedule store)."""

from __future__ import annotations

from taskq.beat.core.stores.sqlite import SQLiteScheduleStore


class SQLiteJobStore(SQLiteScheduleStore):
    persistent = True

    def __init__(self, url: str = "sqlite:///jobs.sqlite") -> None:
        if "://" not in url:  # a plain file path
            url = f"sqlite:///{url}"
        super().__init__(url)
