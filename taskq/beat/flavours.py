"""The scheduler flavours of the optional extras, APScheduler's names: GeventScheduler
(``gevent``), TwistedScheduler (``twisted``), TornadoScheduler (``tornado``), QtScheduler
(``qt``, PySide6). Like BackgroundScheduler, the core's tick/wait loop runs in a thread of
its own (its waits block); what differs is where jobs run by default: greenlets on the
starting thread's gevent hub, the reactor's thread pool, the IOLoop's executor, a thread
pool beside the Qt event loop.
"""

from __future__ import annotations

import importlib
from typing import Any

from taskq.beat.executors.base import BaseExecutor
from taskq.beat.schedulers import BackgroundScheduler
from taskq.errors import ConfigurationError


def _require(module: str, extra: str, flavour: str) -> Any:
    try:
        return importlib.import_module(module)
    except ImportError:
        raise ConfigurationError(f"{flavour} needs {module.split('.')[0]}: pip install 'taskq[{extra}]'") from None


class GeventScheduler(BackgroundScheduler):
    """Jobs run as greenlets on the hub of the thread that calls start() (which must keep
    yielding to gevent, e.g. ``gevent.sleep`` or a gevent server)."""

    def _prepare_start(self) -> None:
        _require("gevent", "gevent", "GeventScheduler")

    def _create_default_executor(self) -> BaseExecutor:
        from taskq.beat.executors.gevent import GeventExecutor

        return GeventExecutor()


class TwistedScheduler(BackgroundScheduler):
    """Jobs run in the reactor's thread pool (``reactor=`` to pass one; the global reactor
    otherwise)."""

    def __init__(self, gconfig: dict[str, Any] | None = None, *, reactor: Any = None, **options: Any) -> None:
        self._reactor = reactor
        super().__init__(gconfig, **options)

    def _prepare_start(self) -> None:
        if self._reactor is None:
            self._reactor = _require("twisted.internet.reactor", "twisted", "TwistedScheduler")

    def _create_default_executor(self) -> BaseExecutor:
        from taskq.beat.executors.twisted import TwistedExecutor

        return TwistedExecutor()


class TornadoScheduler(BackgroundScheduler):
    """Jobs run in a thread pool driven from the IOLoop (``io_loop=``, or the current one
    of the thread that calls start())."""

    def __init__(self, gconfig: dict[str, Any] | None = None, *, io_loop: Any = None, **options: Any) -> None:
        self._ioloop = io_loop
        super().__init__(gconfig, **options)

    def _prepare_start(self) -> None:
        ioloop = _require("tornado.ioloop", "tornado", "TornadoScheduler")
        if self._ioloop is None:
            self._ioloop = ioloop.IOLoop.current()

    def _create_default_executor(self) -> BaseExecutor:
        from taskq.beat.executors.tornado import TornadoExecutor

        return TornadoExecutor()


class QtScheduler(BackgroundScheduler):
    """For Qt applications (PySide6): jobs run in a thread pool, never on the GUI thread, so
    the event loop stays responsive; a job that touches widgets must hand over to the GUI
    thread (a signal, or ``QMetaObject.invokeMethod``), as with APScheduler's QtScheduler."""

    def _prepare_start(self) -> None:
        _require("PySide6.QtCore", "qt", "QtScheduler")


__all__ = ["GeventScheduler", "QtScheduler", "TornadoScheduler", "TwistedScheduler"]
