"""Task[P, R]: a registered function that can run here (``task(...)``) or on a worker
(``task.delay(...)``), with its signature kept for type checkers."""

from __future__ import annotations

import random
from collections.abc import Callable, Iterable, Sequence
from contextvars import ContextVar
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import TYPE_CHECKING, Any, Generic, NoReturn, ParamSpec, TypeVar

from taskq.errors import ConfigurationError, Retry
from taskq.worker.ratelimit import check_scope, parse_rate
from taskq.worker.timelimits import check_limit

if TYPE_CHECKING:
    from taskq.app import TaskQ
    from taskq.canvas.signatures import Signature
    from taskq.result import AsyncResult

P = ParamSpec("P")
R = TypeVar("R")


@dataclass(frozen=True)
class TaskOptions:
    name: str
    bind: bool = False
    max_retries: int | None = None  # None: app.conf.task_max_retries
    default_retry_delay: float | None = None  # None: app.conf.task_default_retry_delay
    retry_backoff: bool | float = False
    retry_backoff_max: float = 600.0
    retry_jitter: bool = True
    autoretry_for: tuple[type[BaseException], ...] = ()
    queue: str | None = None
    exchange: str | None = None  # with routing_key: where the task is published (taskq/routing.py)
    routing_key: str | None = None
    priority: int | None = None
    ignore_result: bool | None = None
    acks_late: bool | None = None
    expires: float | None = None  # seconds after sending
    time_limit: float | None = None  # hard limit, seconds (docs/worker.md)
    soft_time_limit: float | None = None  # SoftTimeLimitExceeded inside the task, seconds
    rate_limit: str | float | None = None  # "100/s", "10/m", "2/h" (worker/ratelimit.py)
    rate_limit_scope: str = "worker"  # or "global": across workers, through Redis


@dataclass
class Request:
    """What the running task knows about its own message (``self.request``)."""

    id: str
    task: str
    args: list[Any]
    kwargs: dict[str, Any]
    retries: int = 0
    queue: str = ""
    eta: datetime | None = None
    expires: datetime | None = None
    root_id: str | None = None
    parent_id: str | None = None
    priority: int = 0
    headers: dict[str, Any] = field(default_factory=dict)
    retries_exhausted: bool = False  # set when retry() gave up; the worker dead-letters then

    @property
    def delivery_info(self) -> dict[str, Any]:
        """Where the message came from, under Celery's keys (``routing_key`` is its queue)."""
        return {"exchange": "", "routing_key": self.queue, "priority": self.priority, "redelivered": None}


# Per thread, as threading.local is, and per asyncio task: -P asyncio runs many tasks' coroutines
# on one event loop thread, each in its own context (worker/timelimits.py ``limited``).
_current: ContextVar[Request | None] = ContextVar("taskq_current_request", default=None)


class Task(Generic[P, R]):
    def __init__(self, app: TaskQ, fn: Callable[..., Any], options: TaskOptions) -> None:
        self.app = app
        self.fn = fn
        self.options = options
        self._defaults: tuple[TaskOptions, dict[str, Any]] | None = None  # _default_options, for options
        self.name = options.name
        self.__doc__ = fn.__doc__
        self.__name__ = getattr(fn, "__name__", options.name)
        self.__module__ = getattr(fn, "__module__", "")

    def __repr__(self) -> str:
        return f"<@task: {self.name}>"

    def __call__(self, *args: P.args, **kwargs: P.kwargs) -> R:
        """Run the function here, in this process (as Celery does)."""
        if self.options.bind:
            return self.fn(self, *args, **kwargs)  # type: ignore[no-any-return]
        return self.fn(*args, **kwargs)  # type: ignore[no-any-return]

    @property
    def request(self) -> Request:
        req = _current.get()
        if req is None:
            raise RuntimeError(f"{self.name}.request is only available while a worker runs the task")
        return req

    def delay(self, *args: P.args, **kwargs: P.kwargs) -> AsyncResult[R]:
        """Send the call to a worker; every argument goes to the task, none is an option."""
        return self.apply_async(args, kwargs)

    def apply_async(
        self,
        args: Sequence[Any] | None = None,
        kwargs: dict[str, Any] | None = None,
        **options: Any,
    ) -> AsyncResult[R]:
        """Send with options: countdown, eta, expires, queue, priority, task_id, headers.
        With ``app.conf.task_always_eager`` the task runs here instead (taskq/eager.py)."""
        if self.app.conf.task_always_eager:
            from taskq.eager import apply_eagerly

            return apply_eagerly(self, args, kwargs, {**self._default_options(), **options})
        return self.app.send_task(self.name, args, kwargs, **{**self._default_options(), **options})

    def delay_on_commit(self, *args: P.args, **kwargs: P.kwargs) -> None:
        """``delay`` once the current Django transaction commits (at once outside one); never
        when it rolls back. Celery 5.4's name; the task id is not known before the commit."""
        self.apply_async_on_commit(args, kwargs)

    def apply_async_on_commit(
        self, args: Sequence[Any] | None = None, kwargs: dict[str, Any] | None = None, **options: Any
    ) -> None:
        """``apply_async`` once the current Django transaction commits (``using=`` a database alias)."""
        try:
            from django.db import transaction
        except ImportError:
            raise ConfigurationError(f"{self.name}.delay_on_commit needs Django (pip install django)") from None
        using = options.pop("using", None)
        transaction.on_commit(lambda: self.apply_async(args, kwargs, **options), using=using)

    def delay_many(self, calls: Iterable[Sequence[Any]], **options: Any) -> list[AsyncResult[R]]:
        """Send many calls (each a tuple of positional arguments) in few round trips."""
        if self.app.conf.task_always_eager:
            if "task_id" in options:
                raise ConfigurationError("task_id cannot be given for many calls")
            return [self.apply_async(tuple(c), None, **options) for c in calls]
        return self.app.send_many(self.name, [(tuple(c), {}) for c in calls], **{**self._default_options(), **options})

    # -- canvas (taskq/canvas) ---------------------------------------------------------------
    def s(self, *args: Any, **kwargs: Any) -> Signature:
        """A signature of this call; in a chain it gets the previous result first."""
        from taskq.canvas.signatures import Signature

        return Signature(self, args, kwargs)

    def si(self, *args: Any, **kwargs: Any) -> Signature:
        """An immutable signature: a chain's previous result is not added to its arguments."""
        from taskq.canvas.signatures import Signature

        return Signature(self, args, kwargs, immutable=True)

    def map(self, it: Iterable[Any]) -> Signature:
        """One task that calls this one for each item, in a worker (Celery's xmap)."""
        from taskq.canvas.mapping import xmap

        return xmap(self, it)

    def starmap(self, it: Iterable[Sequence[Any]]) -> Signature:
        """As ``map``, each item being the positional arguments (Celery's xstarmap)."""
        from taskq.canvas.mapping import xstarmap

        return xstarmap(self, it)

    def chunks(self, it: Iterable[Sequence[Any]], n: int) -> Signature:
        """The calls split into tasks of ``n`` calls each, sent as a group."""
        from taskq.canvas.mapping import chunks

        return chunks(self, it, n)

    def _default_options(self) -> dict[str, Any]:
        """The task's own send options (defaults of every send), made once per ``self.options``
        (frozen): callers merge it into a new dict and must not change it."""
        kept = self._defaults
        if kept is None or kept[0] is not self.options:
            kept = self._defaults = (self.options, self._send_defaults())
        return kept[1]

    def _send_defaults(self) -> dict[str, Any]:
        opts: dict[str, Any] = {}
        for key in ("queue", "exchange", "routing_key"):
            value = getattr(self.options, key)
            if value is not None:
                opts[key] = value
        if self.options.priority is not None:
            opts["priority"] = self.options.priority
        if self.options.expires is not None:
            opts["expires"] = self.options.expires
        if self.options.time_limit is not None:  # in the timelimit header, as Celery reads it
            opts["time_limit"] = self.options.time_limit
        if self.options.soft_time_limit is not None:
            opts["soft_time_limit"] = self.options.soft_time_limit
        return opts

    # -- retries ------------------------------------------------------------------------
    @property
    def max_retries(self) -> int | None:
        return self.app.conf.task_max_retries if self.options.max_retries is None else self.options.max_retries

    def retry(
        self,
        exc: BaseException | None = None,
        countdown: float | None = None,
        eta: datetime | None = None,
        max_retries: int | None = None,
        args: Sequence[Any] | None = None,
        kwargs: dict[str, Any] | None = None,
    ) -> NoReturn:
        """Ask the worker to run this task again later; raises, so use ``raise self.retry()``
        or just call it; ``args``/``kwargs`` replace the next run's arguments (Celery's). When
        retries are exhausted ``exc`` (or MaxRetriesExceeded) is raised and the task ends
        FAILURE with its message in the dead letters."""
        req = self.request
        limit = self.max_retries if max_retries is None else max_retries
        if limit is not None and req.retries >= limit:
            req.retries_exhausted = True
            if exc is not None:
                raise exc
            raise MaxRetriesExceededError(f"{self.name}[{req.id}] exceeded max_retries={limit}")
        if eta is None:
            countdown = self.retry_countdown(req.retries) if countdown is None else countdown
            eta = datetime.now(timezone.utc) + timedelta(seconds=countdown)
        else:
            countdown = (eta - datetime.now(timezone.utc)).total_seconds()
        raise Retry(exc, eta, max(countdown, 0.0), args, kwargs)

    def retry_countdown(self, retries: int) -> float:
        """Exponential backoff with full jitter when retry_backoff is on, else the fixed delay."""
        o = self.options
        if o.retry_backoff:
            factor = 1.0 if o.retry_backoff is True else float(o.retry_backoff)
            countdown = min(o.retry_backoff_max, factor * (2**retries))
            return random.uniform(0, countdown) if o.retry_jitter else countdown
        return self.app.conf.task_default_retry_delay if o.default_retry_delay is None else o.default_retry_delay


class MaxRetriesExceededError(Exception):
    """A task called retry() after its last allowed retry (Celery's name)."""


def make_options(name: str, fn: Callable[..., Any], kwargs: dict[str, Any]) -> TaskOptions:
    if "rate_limit" in kwargs:
        parse_rate(kwargs["rate_limit"])  # "10/s", "10/m", "10/h": else one clear error now
    if "rate_limit_scope" in kwargs:
        check_scope(kwargs["rate_limit_scope"])
    for key in ("time_limit", "soft_time_limit"):
        if key in kwargs:
            kwargs[key] = check_limit(kwargs[key], f"task {name}: {key}")
    autoretry = kwargs.get("autoretry_for", ())
    if isinstance(autoretry, type):
        kwargs["autoretry_for"] = (autoretry,)
    priority = kwargs.get("priority")
    if priority is not None and not (isinstance(priority, int) and 0 <= priority <= 9):
        raise ConfigurationError(f"task {name}: priority must be an integer 0-9, not {priority!r}")
    try:
        return TaskOptions(name=name, **kwargs)
    except TypeError as exc:
        raise ConfigurationError(f"task {name}: {exc}".replace("TaskOptions.__init__()", "@app.task")) from None


def set_current_request(request: Request | None) -> None:
    _current.set(request)


def current_request() -> Request | None:
    """The request of the task running here (this thread, or this coroutine on the asyncio pool), if any."""
    return _current.get()
