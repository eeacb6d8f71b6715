"""TornadoScheduler (the ``tornado`` extra): the loop's steps run on the IOLoop, its wake-up is
``IOLoop.call_later``, as with APScheduler's; jobs run in a thread pool driven from the IOLoop."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, Concatenate, ParamSpec, TypeVar

from taskq.beat.executors.base import BaseExecutor
from taskq.beat.schedulers import SchedulerNotRunningError
from taskq.beat.schedulers.base import require_extra
from taskq.beat.schedulers.eventloop import EventLoopScheduler

P = ParamSpec("P")
S = TypeVar("S", bound="TornadoScheduler")


def run_in_ioloop(func: Callable[Concatenate[S, P], Any]) -> Callable[Concatenate[S, P], None]:
    """APScheduler's decorator: the method runs on the scheduler's IOLoop, called from any
    thread (it returns at once)."""

    @functools.wraps(func)
    def wrapper(self: S, /, *args: P.args, **kwargs: P.kwargs) -> None:
        if self._ioloop is None:
            raise SchedulerNotRunningError()
        self._ioloop.add_callback(func, self, *args, **kwargs)

    return wrapper


class TornadoScheduler(EventLoopScheduler):
    """``io_loop=`` to pass one; the current IOLoop of the thread that calls start() otherwise.
    Nothing is scheduled before that IOLoop runs."""

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

    @run_in_ioloop
    def _post(self, callback: Callable[[], None]) -> None:
        callback()

    def _call_later(self, seconds: float, callback: Callable[[], None]) -> Any:
        return self._ioloop.call_later(seconds, callback)

    def _cancel(self, timer: Any) -> None:
        self._ioloop.remove_timeout(timer)
