"""taskq: a distributed task queue in the style of Celery, with a periodic scheduler."""

# First of all: `taskq worker -P gevent` monkey-patches here, before anything else is imported
# (taskq/gevent_patch.py); hence the imports below the call.
# ruff: noqa: E402
from taskq.gevent_patch import patch_if_asked

patch_if_asked()

from taskq import states
from taskq.app import TaskQ
from taskq.beat import at, cron, crontab, every
from taskq.canvas import GroupResult, Signature, chain, chord, group, signature
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

__version__ = "0.1.0"

__all__ = [
    "AsyncResult",
    "BackendError",
    "BrokerError",
    "ChordError",
    "ConfigurationError",
    "GroupResult",
    "MaxRetriesExceededError",
    "NotRegistered",
    "NotSupportedYet",
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
    "every",
    "group",
    "signature",
    "states",
]
