"""taskq: a distributed task queue in the style of Celery, with a periodic scheduler."""

# First of all: `taskq worker -P gevent` monkey-patches here, before anything else is imported
# (taskq/gevent_patch.py); hence the imports below the call.
# ruff: noqa: E402
from taskq.gevent_patch import patch_if_asked

patch_if_asked()
from typing import TYPE_CHECKING, Any

from taskq import states
from taskq.app import TaskQ
from taskq.canvas import GroupResult, Signature, chain, chord, group, signature
from taskq.compat.shared import current_app, shared_task
from taskq.errors import (
    BackendError,
    BrokerError,
    ChordError,
    ConfigurationError,
    NotRegistered,
    NotSupportedYet,
    Retry,
    SoftTimeLimitExceeded,
    TaskFailure,
    TaskQError,
    TaskRevokedError,
    TimeLimitExceeded,
    TimeoutError,
)
from taskq.result import AsyncResult
from taskq.task import MaxRetriesExceededError, Task

if TYPE_CHECKING:
    from kombu.entity import Exchange, Queue

    from taskq.beat import at, cron, crontab, every, solar

__version__ = "0.1.0"

Celery = TaskQ  # ``from taskq import Celery``: a Celery project's one changed line

__all__ = [
    "AsyncResult",
    "BackendError",
    "BrokerError",
    "Celery",
    "ChordError",
    "ConfigurationError",
    "Exchange",
    "GroupResult",
    "MaxRetriesExceededError",
    "NotRegistered",
    "NotSupportedYet",
    "Queue",
    "Retry",
    "Signature",
    "SoftTimeLimitExceeded",
    "Task",
    "TaskFailure",
    "TaskQ",
    "TaskQError",
    "TaskRevokedError",
    "TimeLimitExceeded",
    "TimeoutError",
    "__version__",
    "at",
    "chain",
    "chord",
    "cron",
    "crontab",
    "current_app",
    "every",
    "group",
    "shared_task",
    "signature",
    "solar",
    "states",
]


# Imported on first use (``from taskq import crontab`` works as before): the schedules pull in
# zoneinfo, calendar, uuid and platform, about 10 ms of a worker's start that only beat and
# the apps declaring schedules need (issue 22, startup).
_BEAT_NAMES = frozenset({"at", "cron", "crontab", "every", "solar"})


def __getattr__(name: str) -> Any:
    """``taskq.Queue`` and ``taskq.Exchange`` are kombu's (task_queues, docs/routing.md),
    imported on first use: ``import taskq`` stays free of kombu. The schedules likewise."""
    if name in ("Queue", "Exchange"):
        import kombu

        return getattr(kombu, name)
    if name in _BEAT_NAMES:
        import taskq.beat

        value = getattr(taskq.beat, name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'taskq' has no attribute {name!r}")
