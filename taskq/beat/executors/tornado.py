"""TornadoExecutor: runs jobs in a thread pool, started from the scheduler's IOLoop, as in
APScheduler."""

from __future__ import annotations

import concurrent.futures as cf
from typing import Any

from taskq.beat.executors.base import BaseExecutor, ExecutorHost, Run, call
from taskq.errors import ConfigurationError


class TornadoExecutor(BaseExecutor):
    _io_loop: Any = None

    def __init__(self, max_workers: int = 10) -> None:
        self._max_workers = max_workers
        self._pool = cf.ThreadPoolExecutor(max_workers)
        self._closed = False

    def start(self, scheduler: ExecutorHost, alias: str) -> None:
        try:
            from tornado.ioloop import IOLoop
        except ImportError:  # pragma: no cover - the `tornado` extra
            raise ConfigurationError("TornadoExecutor needs tornado: pip install 'taskq[tornado]'") from None
        super().start(scheduler, alias)
        if self._closed:  # the scheduler is started again after a shutdown
            self._pool, self._closed = cf.ThreadPoolExecutor(self._max_workers), False
        self._io_loop = getattr(scheduler, "_ioloop", None) or IOLoop.current()

    def _do_submit(self, run: Run) -> None:
        self._io_loop.add_callback(self._on_loop, run)

    def _on_loop(self, run: Run) -> None:
        future = self._io_loop.run_in_executor(self._pool, call, run.func, run.args, run.kwargs)
        future.add_done_callback(lambda done: self._finished(run, done.result()))

    def shutdown(self, wait: bool = True) -> None:
        self._closed = True
        self._pool.shutdown(wait)
