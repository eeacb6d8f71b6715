"""TwistedScheduler (the ``twisted`` extra): the loop's steps run in the reactor, its wake-up is
``reactor.callLater``, as with APScheduler's; jobs run in the reactor's thread pool."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, Concatenate, ParamSpec, TypeVar

from taskq.beat.executors.base import BaseExecutor
from taskq.beat.schedulers.base import require_extra
from taskq.beat.schedulers.eventloop import EventLoopScheduler

P = ParamSpec("P")
S = TypeVar("S", bound="TwistedScheduler")


def run_in_reactor(func: Callable[Concatenate[S, P], Any]) -> Callable[Concatenate[S, P], None]:
    """APScheduler's decorator: the method runs in the scheduler's reactor, called from any
    thread (it returns at once)."""

    @functools.wraps(func)
    def wrapper(self: S, /, *args: P.args, **kwargs: P.kwargs) -> None:
        self._reactor.callFromThread(func, self, *args, **kwargs)

    return wrapper


class TwistedScheduler(EventLoopScheduler):
    """``reactor=`` to pass one; the global reactor otherwise. Nothing is scheduled before the
    reactor runs."""

    def __init__(self, gconfig: dict[str, Any] | None = None, *, reactor: Any = None, **options: Any) -> None:
        self._reactor = reactor
        super().__init__(gconfig, **options)

    def _prepare_start(self) -> None:
        if self._reactor is None:
            self._reactor = require_extra("twisted.internet.reactor", "twisted", "TwistedScheduler")

    def _create_default_executor(self) -> BaseExecutor:
        from taskq.beat.executors.twisted import TwistedExecutor

        return TwistedExecutor()

    @run_in_reactor
    def _post(self, callback: Callable[[], None]) -> None:
        callback()

    def _call_later(self, seconds: float, callback: Callable[[], None]) -> Any:
        return self._reactor.callLater(seconds, callback)

    def _cancel(self, timer: Any) -> None:
        if timer.active():
            timer.cancel()
