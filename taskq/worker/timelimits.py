"""Time limits: which apply to a call, and the alarm that raises the soft one inside the task.

Limits come, first found wins, from the message's ``timelimit`` header ``[hard, soft]``
(per call, and what Celery sends), the task's ``time_limit``/``soft_time_limit``, then the
app's ``task_time_limit``/``task_soft_time_limit``. ``None`` or 0 means no limit.

Soft limit, raised inside the task as ``SoftTimeLimitExceeded`` so it can clean up:

* in a process's main thread (prefork children, solo): SIGALRM, whose handler raises; a
  signal also interrupts ``time.sleep`` and most blocking calls;
* in other threads (threads pool): the exception is set asynchronously on the task's thread
  (``PyThreadState_SetAsyncExc``); it is raised at the thread's next Python bytecode, so a
  task blocked in one long C call (a sleep, a socket read) sees it when that call returns;
* ``async def`` tasks: the coroutine is cancelled (it sees ``CancelledError`` and may clean up
  in ``finally``); the stored failure is ``SoftTimeLimitExceeded``.

Hard limit: the prefork supervisor kills the child (supervisor.py); in the other pools the
same alarm raises ``TimeLimitExceeded`` in the task at the hard limit (a process cannot kill
one of its threads), with the same reach as the soft alarm.
"""

from __future__ import annotations

import ctypes
import math
import signal
import threading
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Any

from taskq.config import Settings
from taskq.errors import ConfigurationError, SoftTimeLimitExceeded, TimeLimitExceeded


@dataclass(frozen=True)
class Limits:
    hard: float | None = None
    soft: float | None = None

    @property
    def any(self) -> bool:
        return self.hard is not None or self.soft is not None


NO_LIMITS = Limits()
_UNSET = [None, None]  # the timelimit header of a message sent without limits (never changed)


def check_limit(value: Any, what: str) -> float | None:
    """A limit in seconds, or None for none (None or 0); anything else is ConfigurationError."""
    if value is None:
        return None
    try:
        seconds = float(value)
    except (TypeError, ValueError):
        raise ConfigurationError(f"{what} must be a number of seconds, not {value!r}") from None
    if isinstance(value, bool) or math.isnan(seconds) or seconds < 0 or math.isinf(seconds):
        raise ConfigurationError(f"{what} must be a finite number of seconds >= 0, not {value!r}")
    return seconds or None


def app_limits(conf: Settings) -> Limits:
    """The settings' limits; NO_LIMITS itself when there are none (``limits_of`` asks that by identity)."""
    limits = Limits(
        check_limit(conf.task_time_limit, "task_time_limit"),
        check_limit(conf.task_soft_time_limit, "task_soft_time_limit"),
    )
    return limits if limits.any else NO_LIMITS


def task_limits(options: Any) -> Limits:
    """A task's own limits (``time_limit``, ``soft_time_limit`` of its options)."""
    hard, soft = options.time_limit, options.soft_time_limit
    return NO_LIMITS if hard is None and soft is None else Limits(hard, soft)


def limits_of(header: Any, options: Any, app: Limits) -> Limits:
    """``effective(header, task_limits(options), app)``, in one call for the common task
    (no limit in its header, its options or the app's settings: runs for every task)."""
    if (
        options.time_limit is None
        and options.soft_time_limit is None
        and app is NO_LIMITS
        and (header == _UNSET or not _given(header))  # a message taskq sent without limits: one comparison
    ):
        return NO_LIMITS
    return effective(header, task_limits(options), app)


def effective(header: Any, task: Limits, app: Limits) -> Limits:
    """The limits of one call: the header's, else the task's, else the app's."""
    if not _given(header) and not (task.any or app.any):
        return NO_LIMITS  # the common call: no limit anywhere, nothing to build
    hard = soft = None
    if isinstance(header, (list, tuple)) and len(header) == 2:
        hard, soft = (_header_value(v) for v in header)
    return Limits(
        hard if hard is not None else task.hard if task.hard is not None else app.hard,
        soft if soft is not None else task.soft if task.soft is not None else app.soft,
    )


def _given(header: Any) -> bool:
    """A ``timelimit`` header that names a limit (not absent, not ``[None, None]``)."""
    return isinstance(header, (list, tuple)) and len(header) == 2 and tuple(header) != (None, None)


def _header_value(value: Any) -> float | None:
    try:
        return check_limit(value, "timelimit")
    except ConfigurationError:
        return None  # a malformed header limit is no limit, as Celery reads it


class Alarm:
    """Raises the limit exceptions inside the thread that armed it, while armed."""

    def __init__(self, hard_in_process: bool) -> None:
        self.hard_in_process = hard_in_process  # False in prefork children: the supervisor kills
        self._lock = threading.Lock()
        self._armed = False
        self._timers: list[threading.Timer] = []
        self._ident = 0
        self._main = False
        self._pending: type[BaseException] | None = None  # the signal alarm's next exception
        self._hard_after = 0.0
        self._limits = Limits()

    def arm(self, limits: Limits) -> None:
        soft, hard = limits.soft, limits.hard if self.hard_in_process else None
        if soft is None and hard is None:
            return
        self._limits = limits
        self._ident = threading.get_ident()
        self._main = threading.current_thread() is threading.main_thread()
        with self._lock:
            self._armed = True
        first = soft if soft is not None and (hard is None or soft < hard) else hard
        assert first is not None
        if self._main:
            self._pending = SoftTimeLimitExceeded if first == soft else TimeLimitExceeded
            self._hard_after = (hard - first) if hard is not None and first == soft else 0.0
            signal.signal(signal.SIGALRM, self._on_signal)
            signal.setitimer(signal.ITIMER_REAL, first)
            return
        for delay, exc in ((soft, SoftTimeLimitExceeded), (hard, TimeLimitExceeded)):
            if delay is not None:
                timer = threading.Timer(delay, self._raise_in_thread, (exc,))
                timer.daemon = True
                timer.start()
                self._timers.append(timer)

    def disarm(self) -> None:
        if not self._armed:  # read without the lock: only this thread arms it (the call without limits)
            return
        with self._lock:
            was_armed, self._armed = self._armed, False
        if not was_armed:
            return
        if self._main:
            signal.setitimer(signal.ITIMER_REAL, 0)
            return
        for timer in self._timers:
            timer.cancel()
        self._timers.clear()
        # An exception set a moment ago but not raised yet must not hit the runner's code.
        ctypes.pythonapi.PyThreadState_SetAsyncExc(ctypes.c_ulong(self._ident), None)

    def _on_signal(self, signum: int, frame: Any) -> None:
        exc = self._pending
        if not self._armed or exc is None:
            return
        if self._hard_after > 0:  # the soft limit now, the hard one later
            self._pending, after, self._hard_after = TimeLimitExceeded, self._hard_after, 0.0
            signal.setitimer(signal.ITIMER_REAL, after)
        else:
            self._pending = None
        raise exc(self._why(exc))

    def _raise_in_thread(self, exc: type[BaseException]) -> None:
        with self._lock:
            if self._armed:
                ctypes.pythonapi.PyThreadState_SetAsyncExc(ctypes.c_ulong(self._ident), ctypes.py_object(exc))

    def _why(self, exc: type[BaseException]) -> str:
        if exc is SoftTimeLimitExceeded:
            return f"soft time limit ({self._limits.soft:g}s) exceeded"
        return f"hard time limit ({self._limits.hard:g}s) exceeded"


async def limited(coro: Coroutine[Any, Any, Any], limits: Limits, enter: Callable[[], None] = lambda: None) -> Any:
    """Await an ``async def`` task on the running loop; at a limit it is cancelled, and the
    limit's exception is what this raises. ``enter`` runs first, in this asyncio task's own
    context (it sets the task's ``self.request`` there: the loop may run other tasks' too)."""
    import asyncio  # loaded already (a loop runs); not at module level: sync workers never need it

    enter()
    loop = asyncio.get_running_loop()
    task = loop.create_task(coro)
    hit: list[BaseException] = []

    def stop(exc: BaseException) -> None:
        if not task.done():
            hit.append(exc)
            task.cancel(str(exc))

    handles = []
    for delay, exc in ((limits.soft, SoftTimeLimitExceeded), (limits.hard, TimeLimitExceeded)):
        if delay is not None:
            kind = "soft" if exc is SoftTimeLimitExceeded else "hard"
            handles.append(loop.call_later(delay, stop, exc(f"{kind} time limit ({delay:g}s) exceeded")))
    try:
        return await task
    except asyncio.CancelledError:
        if hit:
            raise hit[-1] from None
        raise
    finally:
        for handle in handles:
            handle.cancel()
