"""TornadoScheduler (the ``tornado`` extra)."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, Concatenate, ParamSpec, TypeVar

from taskq.beat.executors.base import BaseExecutor
from taskq.beat.schedulers import SchedulerNotRunningError
from taskq.beat.schedulers.background import BackgroundScheduler
from taskq.beat.schedulers.base import require_extra

P = ParamSpec("P")
S = TypeVar("S", bound="TornadoScheduler")


def run_in_ioloop(func: Callable[Concatenate[S, P], Any]) -> Callable[Concatenate[S, P], None]:
    """APScheduler's decorator: the method runs on the scheduler's IOLoop, called from any thread
    (it returns at once)."""

    @functools.wraps(func)
    def wrapper(self: S, /, *args: P.args, **kwargs: P.kwargs) -> None:
        if self._ioloop is None:
            raise SchedulerNotRunningError()
        self._ioloop.add_callback(func, self, *args, **kwargs)

    return wrapper


class TornadoScheduler(BackgroundScheduler):
    """Jobs run in a thread pool driven from the IOLoop (``io_loop=``, or the current one
    of the thread that calls start())."""

    def __init__(self, gconfig: dict[str, Any] | None = None, *, io_loop: Any = None, **options: Any) -> None:
        self._ioloop = io_loop
        super().__init__(gconfig, **options)

    def _prepare_start(self) -> None:
        ioloop = require_extra("tornado.ioloop", "tornado", "TornadoScheduler")
        if self._ioloop is None:
            self._ioloop = ioloop.IOLoop.current()

    def _create_default_executor(self) -> BaseExecutor:
        from taskq.beat.executors.tornado import TornadoExecutor

        return TornadoExecutor()
