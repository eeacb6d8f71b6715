"""Job stores: where jobs live, named by alias as in APScheduler. Every job store is a taskq
schedule store (``taskq.beat.core.stores.base.ScheduleStore``: entries, state, the leader lock
and the per-instant claim), so the one scheduling core runs jobs from any of them.

``persistent`` stores keep a plain callable by its import reference ("module:function")
and refuse one that has none (a lambda, a nested function); the memory store takes any
callable.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

from taskq.beat.core.errors import ConflictingIdError, JobLookupError  # where APScheduler keeps them
from taskq.beat.core.stores.base import ScheduleStore
from taskq.beat.job import TransientJobError


@runtime_checkable
class BaseJobStore(ScheduleStore, Protocol):
    persistent: bool


__all__ = ["BaseJobStore", "ConflictingIdError", "JobLookupError", "TransientJobError"]
