"""AsyncIOScheduler: the loop is a task on the running event loop of the thread that calls
start()."""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Callable
from typing import Any, Concatenate, ParamSpec, TypeVar

from taskq.beat.core import hook
from taskq.beat.executors.base import BaseExecutor
from taskq.beat.schedulers.base import STATE_PAUSED, BaseScheduler
from taskq.beat.schedulers.eventloop import DaemonWorker
from taskq.display import redact

P = ParamSpec("P")
S = TypeVar("S", bound="AsyncIOScheduler")


def run_in_event_loop(func: Callable[Concatenate[S, P], Any]) -> Callable[Concatenate[S, P], None]:
    """APScheduler's decorator: the method runs on the scheduler's event loop, called from any
    thread (it returns at once)."""

    @functools.wraps(func)
    def wrapper(self: S, /, *args: P.args, **kwargs: P.kwargs) -> None:
        assert self._eventloop is not None, "the scheduler is not started"
        self._eventloop.call_soon_threadsafe(functools.partial(func, self, *args, **kwargs))

    return wrapper


class AsyncIOScheduler(BaseScheduler):
    """start() on a running event loop schedules the loop as a task. The core's blocking
    calls (store, broker, the wait) run in a thread of their own, so the event loop never
    blocks on them; the default executor runs jobs on the event loop (coroutine functions)
    or its thread pool (plain functions)."""

    _task: asyncio.Task[None] | None = None
    _eventloop: asyncio.AbstractEventLoop | None = None

    def _prepare_start(self) -> None:
        self._eventloop = asyncio.get_running_loop()  # RuntimeError outside a running loop, as APScheduler

    def _create_default_executor(self) -> BaseExecutor:
        from taskq.beat.executors.asyncio import AsyncIOExecutor

        return AsyncIOExecutor()

    def _start_loop(self) -> None:
        assert self._eventloop is not None
        self._task = self._eventloop.create_task(self._run(), name="taskq-beat")

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        core = self.core
        # One thread for all of the core's blocking calls: the store's per-thread connections
        # (sqlite, the Redis pub/sub subscription) are opened once, not once per pool thread.
        executor = DaemonWorker()
        core.emit(hook.STARTED, owner=core.owner, store=redact(core.store.url))
        try:
            while not core.stopping:
                paused = self.state == STATE_PAUSED
                seconds = core.lock_ttl / 3 if paused else await loop.run_in_executor(executor, core.tick)
                if core.stopping:
                    break
                await loop.run_in_executor(executor, core.wait, seconds)
        except asyncio.CancelledError:
            # The event loop is closing (the end of asyncio.run()) without a shutdown(): end
            # the worker's wait, or letting go of the lock below would wait for it.
            core.stop()
            self._router.wake()
            raise
        finally:
            await loop.run_in_executor(executor, core.shutdown)
            executor.shutdown(wait=False)

    async def wait_closed(self) -> None:
        """Await the end of the loop after shutdown()."""
        if self._task is not None:
            await self._task
