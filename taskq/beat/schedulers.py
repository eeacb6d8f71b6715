"""Run modes over the one core: BlockingScheduler (``taskq beat``), BackgroundScheduler (a
thread of an application; start() returns at once), AsyncIOScheduler (a task on a running
event loop), and the worker-embedded beat; the Gevent/Twisted/Tornado/Qt flavours live in
``taskq.beat.flavours``. Each is a thin adapter: APScheduler's API (``SchedulerAPI``) over
the core, plus where its tick/wait loop runs: the calling thread, a thread, or the loop.
"""

from __future__ import annotations

import asyncio
import signal
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from types import FrameType
from typing import TYPE_CHECKING, Any

from taskq.beat import events as ev
from taskq.beat.core import DEFAULT_LOCK_TTL, utc_now
from taskq.beat.executors.base import BaseExecutor
from taskq.beat.scheduling import STATE_PAUSED, STATE_RUNNING, STATE_STOPPED, SchedulerAPI
from taskq.beat.stores import ScheduleStore
from taskq.display import redact

if TYPE_CHECKING:
    from taskq.app import TaskQ

__all__ = [
    "STATE_PAUSED",
    "STATE_RUNNING",
    "STATE_STOPPED",
    "AsyncIOScheduler",
    "BackgroundScheduler",
    "BaseScheduler",
    "BlockingScheduler",
    "start_embedded",
]


class BaseScheduler(SchedulerAPI):
    """APScheduler's constructor (``gconfig={}, **options``: timezone, job_defaults,
    executors, jobstores) plus keyword-only ``app``: without one, plain callables run in
    this process from a memory job store; with one, the default job store is the app's
    schedule store and an executor aliased ``broker`` enqueues @app.task functions."""

    def __init__(
        self,
        gconfig: dict[str, Any] | None = None,
        *,
        app: TaskQ | None = None,
        store: ScheduleStore | str | None = None,
        lock_ttl: float = DEFAULT_LOCK_TTL,
        heartbeat_path: str | None = None,
        clock: Callable[[], datetime] = utc_now,
        **options: Any,
    ) -> None:
        self._setup(
            gconfig, options, app=app, store=store, lock_ttl=lock_ttl, heartbeat_path=heartbeat_path, clock=clock
        )

    def add_beat_listener(self, sink: ev.EventSink) -> None:
        """Receive the core's own BeatEvents (the internal hook logging uses)."""
        self.core.sink.add(sink)


class BlockingScheduler(BaseScheduler):
    """start() runs the loop in the calling thread until shutdown() or SIGTERM/SIGINT."""

    def _start_loop(self) -> None:
        previous: dict[signal.Signals, Any] = {}
        if threading.current_thread() is threading.main_thread():
            for signum in (signal.SIGTERM, signal.SIGINT):
                previous[signum] = signal.signal(signum, self._on_signal)
        try:
            self.run_loop()
        finally:
            for signum, handler in previous.items():
                signal.signal(signum, handler)
            if self.running:  # stopped by a signal, not by shutdown()
                self.state = STATE_STOPPED
                for executor in list(self._executors.values()):
                    executor.shutdown(True)
                self._dispatch(ev.SchedulerEvent(ev.EVENT_SCHEDULER_SHUTDOWN))

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        self.core.stop()


class BackgroundScheduler(BaseScheduler):
    """start() returns at once; the loop runs in a daemon thread."""

    _thread: threading.Thread | None = None

    def _start_loop(self) -> None:
        self._thread = threading.Thread(target=self.run_loop, name="taskq-beat", daemon=True)
        self._thread.start()

    def _stop_loop(self, wait: bool) -> None:
        if wait and self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join()


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
        executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="taskq-beat")
        core.emit(ev.STARTED, owner=core.owner, store=redact(core.store.url))
        try:
            while not core.stopping:
                paused = self.state == STATE_PAUSED
                seconds = core.lock_ttl / 3 if paused else await loop.run_in_executor(executor, core.tick)
                if core.stopping:
                    break
                await loop.run_in_executor(executor, core.wait, seconds)
        finally:
            await loop.run_in_executor(executor, core.shutdown)
            executor.shutdown(wait=False)

    async def wait_closed(self) -> None:
        """Await the end of the loop after shutdown()."""
        if self._task is not None:
            await self._task


def start_embedded(app: TaskQ, **options: Any) -> BackgroundScheduler:
    """For ``taskq worker --beat``: a beat thread inside the worker process. With several
    workers started with --beat, one leads (the same lock as separate beats)."""
    scheduler = BackgroundScheduler(app=app, **options)
    scheduler.start()
    return scheduler
