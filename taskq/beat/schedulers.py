"""Run modes over the one core: BlockingScheduler (``taskq beat``), BackgroundScheduler (a
thread of an application; start() returns at once), AsyncIOScheduler (a task on a running
event loop), and the worker-embedded beat. Each is a thin adapter: build the core, then run
its tick/wait loop in the calling thread, a thread, or on the loop.
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
from taskq.beat.api import ScheduleAPI
from taskq.beat.config import entries_from_app
from taskq.beat.core import DEFAULT_LOCK_TTL, SchedulerCore, utc_now
from taskq.beat.exceptions import SchedulerAlreadyRunningError, SchedulerNotRunningError
from taskq.beat.stores import ScheduleStore, open_store
from taskq.beat.stores.base import redact
from taskq.beat.submit import AppSubmitter
from taskq.errors import NotSupportedYet

if TYPE_CHECKING:
    from taskq.app import TaskQ

STATE_STOPPED, STATE_RUNNING = 0, 1  # APScheduler's values


class BaseScheduler(ScheduleAPI):
    """Common to every run mode: the store, the core, the API, start/shutdown."""

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
        if app is None:
            raise NotSupportedYet("a scheduler without an app (plain callables run in-process)")
        unsupported = set(gconfig or {}) | set(options)
        if unsupported:
            raise NotSupportedYet(f"scheduler option(s) {', '.join(sorted(unsupported))}")
        self.app = app
        conf = app.finalize()
        if store is None or isinstance(store, str):
            store = open_store(store or conf.beat_store, app.broker)
        self.core = SchedulerCore(
            store,
            AppSubmitter(app),
            clock=clock,
            lock_ttl=lock_ttl,
            config_entries=entries_from_app(app),
            heartbeat_path=heartbeat_path,
        )
        super().__init__(
            store,
            clock,
            timezone=conf.timezone,
            has_backend=conf.result_backend_url is not None,
            on_change=self.core.wake,
        )
        self.state = STATE_STOPPED

    @property
    def running(self) -> bool:
        return self.state == STATE_RUNNING

    def add_listener(self, sink: ev.EventSink) -> None:
        """Receive every BeatEvent (the internal hook; APScheduler's masks come later)."""
        self.core.sink.add(sink)

    def remove_listener(self, sink: ev.EventSink) -> None:
        self.core.sink.remove(sink)

    def _begin(self) -> None:
        if self.running:
            raise SchedulerAlreadyRunningError()
        self.state = STATE_RUNNING

    def start(self) -> None:
        raise NotImplementedError

    def shutdown(self, wait: bool = True) -> None:
        if not self.running:
            raise SchedulerNotRunningError()
        self.core.stop()
        self._join(wait)
        self.state = STATE_STOPPED

    def _join(self, wait: bool) -> None:
        """Wait for the loop to end (run modes with a thread or task override this)."""


class BlockingScheduler(BaseScheduler):
    """start() runs the loop in the calling thread until shutdown() or SIGTERM/SIGINT."""

    def start(self) -> None:
        self._begin()
        previous: dict[signal.Signals, Any] = {}
        if threading.current_thread() is threading.main_thread():
            for signum in (signal.SIGTERM, signal.SIGINT):
                previous[signum] = signal.signal(signum, self._on_signal)
        try:
            self.core.run()
        finally:
            for signum, handler in previous.items():
                signal.signal(signum, handler)
            self.state = STATE_STOPPED

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        self.core.stop()

    def shutdown(self, wait: bool = True) -> None:
        if not self.running:
            raise SchedulerNotRunningError()
        self.core.stop()


class BackgroundScheduler(BaseScheduler):
    """start() returns at once; the loop runs in a daemon thread."""

    _thread: threading.Thread | None = None

    def start(self) -> None:
        self._begin()
        self._thread = threading.Thread(target=self.core.run, name="taskq-beat", daemon=True)
        self._thread.start()

    def _join(self, wait: bool) -> None:
        if wait and self._thread is not None:
            self._thread.join()


class AsyncIOScheduler(BaseScheduler):
    """start() on a running event loop schedules the loop as a task. The core's blocking
    calls (store, broker, the wait) run in a thread of their own, so the event loop never
    blocks on them."""

    _task: asyncio.Task[None] | None = None

    def start(self) -> None:
        loop = asyncio.get_running_loop()  # RuntimeError outside a running loop, as APScheduler
        self._begin()
        self._task = loop.create_task(self._run(), name="taskq-beat")

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        core = self.core
        # One thread for all of the core's blocking calls: the store's per-thread connections
        # (sqlite, the Redis pub/sub subscription) are opened once, not once per pool thread.
        executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="taskq-beat")
        core.emit(ev.STARTED, owner=core.owner, store=redact(core.store.url))
        try:
            while not core.stopping:
                seconds = await loop.run_in_executor(executor, core.tick)
                if core.stopping:
                    break
                await loop.run_in_executor(executor, core.wait, seconds)
        finally:
            await loop.run_in_executor(executor, core.shutdown)
            executor.shutdown(wait=False)

    def shutdown(self, wait: bool = True) -> None:
        if not self.running:
            raise SchedulerNotRunningError()
        self.core.stop()
        self.state = STATE_STOPPED

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
