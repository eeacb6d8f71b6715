"""AsyncIOExecutor: coroutine functions run on the scheduler's event loop; plain functions
in the loop's default thread pool, as in APScheduler."""

from __future__ import annotations

import asyncio
import inspect
import sys
import traceback

from taskq.beat.executors.base import BaseExecutor, ExecutorHost, Outcome, Run, call
from taskq.errors import ConfigurationError


class AsyncIOExecutor(BaseExecutor):
    _loop: asyncio.AbstractEventLoop | None = None

    def start(self, scheduler: ExecutorHost, alias: str) -> None:
        super().start(scheduler, alias)
        loop = getattr(scheduler, "_eventloop", None)
        if loop is None:
            try:
                loop = asyncio.get_running_loop()
            except RuntimeError:
                raise ConfigurationError("the asyncio executor needs a running event loop (AsyncIOScheduler)") from None
        self._loop = loop

    def _do_submit(self, run: Run) -> None:
        assert self._loop is not None, "executor not started"
        future = asyncio.run_coroutine_threadsafe(self._run(run), self._loop)
        future.add_done_callback(lambda done: self._finished(run, done.result()))

    async def _run(self, run: Run) -> Outcome:
        if inspect.iscoroutinefunction(run.func):
            try:
                return Outcome(retval=await run.func(*run.args, **run.kwargs))
            except BaseException as exc:
                return Outcome(exception=exc, traceback="".join(traceback.format_exception(*sys.exc_info())))
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(None, call, run.func, run.args, run.kwargs)
