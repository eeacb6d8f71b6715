"""TwistedScheduler (the ``twisted`` extra)."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, Concatenate, ParamSpec, TypeVar

from taskq.beat.executors.base import BaseExecutor
from taskq.beat.schedulers.background import BackgroundScheduler
from taskq.beat.schedulers.base import require_extra

P = ParamSpec("P")
S = TypeVar("S", bound="TwistedScheduler")


def run_in_reactor(func: Callable[Concatenate[S, P], Any]) -> Callable[Concatenate[S, P], None]:
    """APScheduler's decorator: the method runs on the scheduler's reactor, called from any thread
    (it returns at once)."""

    @functools.wraps(func)
    def wrapper(self: S, /, *args: P.args, **kwargs: P.kwargs) -> None:
        self._reactor.callFromThread(func, self, *args, **kwargs)

    return wrapper


class TwistedScheduler(BackgroundScheduler):
    """Jobs run in the reactor's thread pool (``reactor=`` to pass one; the global reactor
    otherwise)."""

    def __init__(self, gconfig: dict[str, Any] | None = None, *, reactor: Any = None, **options: Any) -> None:
        self._reactor = reactor
        super().__init__(gconfig, **options)

    def _prepare_start(self) -> None:
        if self._reactor is None:
            self._reactor = require_extra("twisted.internet.reactor", "twisted", "TwistedScheduler")

    def _create_default_executor(self) -> BaseExecutor:
        from taskq.beat.executors.twisted import TwistedExecutor

        return TwistedExecutor()
