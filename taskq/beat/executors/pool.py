"""Thread and process pool executors (APScheduler's ``threadpool`` and ``processpool``)."""

from __future__ import annotations

import concurrent.futures as cf
import threading
from collections.abc import Callable
from typing import Any

from taskq.beat.executors.base import BaseExecutor, ExecutorHost, Outcome, Run, call

JOB_THREAD_PREFIX = "taskq-job"


class BasePoolExecutor(BaseExecutor):
    def __init__(self, make_pool: Callable[[], cf.Executor]) -> None:
        self._make_pool = make_pool
        self._pool = make_pool()
        self._closed = False

    def start(self, scheduler: ExecutorHost, alias: str) -> None:
        super().start(scheduler, alias)
        if self._closed:  # the scheduler is started again after a shutdown
            self._pool, self._closed = self._make_pool(), False

    def _do_submit(self, run: Run) -> None:
        future = self._pool.submit(call, run.func, run.args, run.kwargs)
        future.add_done_callback(lambda done: self._finished(run, _outcome(done)))

    def shutdown(self, wait: bool = True) -> None:
        # A job (or a listener in the job's thread) may shut the scheduler down: its own
        # thread cannot wait for itself.
        self._closed = True
        self._pool.shutdown(wait and not threading.current_thread().name.startswith(JOB_THREAD_PREFIX))


class ThreadPoolExecutor(BasePoolExecutor):
    """Runs jobs in a pool of threads (the default executor, as in APScheduler)."""

    def __init__(self, max_workers: int = 10, pool_kwargs: dict[str, Any] | None = None) -> None:
        options = {"thread_name_prefix": JOB_THREAD_PREFIX, **(pool_kwargs or {})}
        super().__init__(lambda: cf.ThreadPoolExecutor(max_workers, **options))


class ProcessPoolExecutor(BasePoolExecutor):
    """Runs jobs in a pool of processes: the function and its arguments must pickle (a
    module-level function does; a lambda does not, and its run is reported as an error)."""

    def __init__(self, max_workers: int = 10, pool_kwargs: dict[str, Any] | None = None) -> None:
        super().__init__(lambda: cf.ProcessPoolExecutor(max_workers, **(pool_kwargs or {})))


def _outcome(future: cf.Future[Outcome]) -> Outcome:
    error = future.exception()
    if error is not None:  # the pool could not run it (pickling, a dead process)
        return Outcome(exception=error, traceback=f"{type(error).__name__}: {error}")
    return future.result()
