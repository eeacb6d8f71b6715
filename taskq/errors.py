"""The one error tree of taskq.

Driver errors (sqlite3, redis-py, pika) are translated once, at the broker or backend
boundary, into this tree, so callers catch taskq errors only::

    TaskQError
    ├── ConfigurationError          bad setting, URL or option; raised before any I/O
    │   └── NotSupportedYet         an option that a later release will support
    ├── BrokerError                 the broker failed or cannot be reached
    │   └── PublishError            a message was not accepted (nack, lost connection)
    ├── BackendError                the result backend failed or cannot be reached
    ├── InvalidResult               a stored result document taskq cannot read
    ├── InvalidMessage              bytes that are not a task message we may run
    │   ├── ContentDisallowed       content type not in accept_content
    │   └── SignatureError          missing or forged signature
    ├── NotRegistered               no task of that name in this app
    ├── TimeoutError                AsyncResult.get() waited too long (also builtins.TimeoutError)
    ├── TaskRevokedError            the task was revoked or expired before running
    ├── SoftTimeLimitExceeded       raised inside a task that passed its soft time limit
    ├── TimeLimitExceeded           a task's hard time limit: it was stopped (the stored failure)
    ├── TaskFailure                 a failed task's exception that cannot be rebuilt locally
    ├── ChordError                  a chord's header task failed: its body does not run
    └── Retry                       raised by Task.retry() to ask the worker for a retry
"""

from __future__ import annotations

import builtins
from collections.abc import Sequence
from datetime import datetime
from typing import Any


class TaskQError(Exception):
    """Root of every error taskq raises."""


class ConfigurationError(TaskQError):
    """A setting, URL or task option is invalid."""


class NotSupportedYet(ConfigurationError):
    """An option that is part of the design but not built yet: never silently ignored."""

    def __init__(self, what: str) -> None:
        super().__init__(f"{what} is not supported yet")


class BrokerError(TaskQError):
    """The broker failed or cannot be reached."""


class PublishError(BrokerError):
    """The broker did not accept a message."""


class BackendError(TaskQError):
    """The result backend failed or cannot be reached."""


class InvalidResult(TaskQError):
    """A stored result document that is not Celery's JSON document (another serializer's, or
    forged); the text names the task id."""


class InvalidMessage(TaskQError):
    """Bytes that are not a task message this worker may run; the text is the reason."""


class ContentDisallowed(InvalidMessage):
    """The message's content type is not in the app's accept_content."""


class SignatureError(InvalidMessage):
    """The message lacks a valid signature while the app requires one."""


class NotRegistered(TaskQError):
    """No task of that name is registered in this app."""


class TimeoutError(TaskQError, builtins.TimeoutError):
    """Waiting for a result took longer than the timeout."""


class TaskRevokedError(TaskQError):
    """The task was revoked or expired before it ran."""


class SoftTimeLimitExceeded(TaskQError):
    """Raised inside a running task at its soft time limit, so it can clean up (Celery's name)."""


class TimeLimitExceeded(TaskQError):
    """A task passed its hard time limit and was stopped; its result is this failure."""


class TaskFailure(TaskQError):
    """A task failed with an exception type that cannot be rebuilt in this process."""

    def __init__(self, exc_type: str, message: str) -> None:
        super().__init__(f"{exc_type}: {message}")
        self.exc_type = exc_type


class ChordError(TaskQError):
    """A header task of a chord failed; the message names it (Celery's name)."""


class Retry(TaskQError):
    """Raised inside a task (by Task.retry) to have the worker schedule another attempt."""

    def __init__(
        self,
        exc: BaseException | None,
        when: datetime,
        countdown: float,
        args: Sequence[Any] | None = None,
        kwargs: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(f"retry in {countdown:.3g}s" + (f": {exc!r}" if exc else ""))
        self.exc = exc
        self.when = when
        self.countdown = countdown
        self.args_override = None if args is None else list(args)  # retry(args=...): the next run's arguments
        self.kwargs_override = None if kwargs is None else dict(kwargs)
