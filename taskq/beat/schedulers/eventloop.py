"""The scheduling loop on the application's event loop, for the Gevent, Twisted, Tornado and Qt
flavours, as APScheduler runs theirs: every step is a callback on that loop and the wake-up
for the next due time is that loop's own timer, so nothing is scheduled while the application
keeps its loop from running (before ``app.exec()``, ``reactor.run()``, ...).

The core's blocking calls (the leader lock, store reads and claims, enqueueing) run in one
worker thread, so the loop never waits on I/O. Between steps the same thread waits for a
store change (pub/sub, data_version) or a wakeup() from any thread, which wakes the loop
before its timer does.
"""

from __future__ import annotations

import concurrent.futures as cf
import functools
import logging
import queue
import threading
from collections.abc import Callable
from typing import Any, TypeVar

from taskq.beat.core import hook
from taskq.beat.core.loop import SchedulerCore
from taskq.beat.schedulers.base import STATE_PAUSED, BaseScheduler
from taskq.display import redact

log = logging.getLogger("taskq.beat")
T = TypeVar("T")


class DaemonWorker(cf.Executor):
    """One daemon thread that runs the core's calls in order. Not a ThreadPoolExecutor: its
    threads are joined when the interpreter exits, and a wait for the next due time (up to a
    third of the lock's TTL) would hold up the exit of a program that never called shutdown()."""

    def __init__(self) -> None:
        self._calls: queue.SimpleQueue[tuple[cf.Future[Any], Callable[[], Any]] | None] = queue.SimpleQueue()
        self._closed = False
        self._thread = threading.Thread(target=self._run, name="taskq-beat", daemon=True)
        self._thread.start()

    def submit(self, fn: Callable[..., T], /, *args: Any, **kwargs: Any) -> cf.Future[T]:
        if self._closed:
            raise RuntimeError("cannot schedule new futures after shutdown")
        future: cf.Future[T] = cf.Future()
        self._calls.put((future, functools.partial(fn, *args, **kwargs)))
        return future

    def _run(self) -> None:
        while (item := self._calls.get()) is not None:
            future, call = item
            if not future.set_running_or_notify_cancel():
                continue
            try:
                future.set_result(call())
            except BaseException as exc:
                future.set_exception(exc)

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        self._closed = True
        self._calls.put(None)
        if wait and threading.current_thread() is not self._thread:
            self._thread.join()


class EventLoopScheduler(BaseScheduler):
    """A flavour supplies ``_post`` (run a callback on its loop, soon, from any thread; never
    at once, even on the loop's own thread), ``_call_later`` and ``_cancel`` (its loop's
    timers), and may supply ``_new_worker``."""

    _worker: cf.Executor | None = None
    _timer: Any = None
    _watch = 0  # numbers the waits in the worker: a step makes the one running stale
    _worker_thread: int | None = None  # the worker's thread (a listener may run in it)

    # -- what a flavour supplies ----------------------------------------------------------------
    def _post(self, callback: Callable[[], None]) -> None:
        raise NotImplementedError

    def _call_later(self, seconds: float, callback: Callable[[], None]) -> Any:
        raise NotImplementedError

    def _cancel(self, timer: Any) -> None:
        raise NotImplementedError

    def _new_worker(self) -> cf.Executor:
        # One thread for all of the core's calls: the store's per-thread connections (sqlite,
        # the Redis pub/sub subscription) are opened once.
        return DaemonWorker()

    # -- the loop, step by step, on the application's loop ------------------------------------------
    def _start_loop(self) -> None:
        self._worker = self._new_worker()
        self._post(functools.partial(self._begin, self.core))

    def _begin(self, core: SchedulerCore) -> None:
        if core is self.core and not core.stopping:
            core.emit(hook.STARTED, owner=core.owner, store=redact(core.store.url))
            self._step(core)

    def _step(self, core: SchedulerCore) -> None:
        """One pass of the core in the worker; its answer (seconds to the next due time) arms
        the timer. ``core`` ties each callback to one run: after a restart the old ones idle."""
        self._watch += 1
        self._cancel_timer()
        if core is not self.core or core.stopping:
            return
        if self.state == STATE_PAUSED:  # no pass while paused; resume() wakes it
            self._arm(core, core.lock_ttl / 3)
        else:
            self._in_worker(core.tick, functools.partial(self._arm, core))

    def _arm(self, core: SchedulerCore, seconds: float) -> None:
        """The loop's timer for the next due time, and the worker's wait that ends sooner on a
        store change, a wakeup() or shutdown()."""
        if core is not self.core or core.stopping:
            return
        self._timer = self._call_later(seconds, functools.partial(self._step, core))
        watch = self._watch
        self._in_worker(functools.partial(core.wait, seconds), lambda _: self._woken(core, watch))

    def _woken(self, core: SchedulerCore, watch: int) -> None:
        if watch == self._watch:  # not a wait the timer has already ended
            self._step(core)

    def _cancel_timer(self) -> None:
        timer, self._timer = self._timer, None
        if timer is not None:
            self._cancel(timer)

    def _in_worker(self, call: Callable[[], T], then: Callable[[T], None]) -> None:
        """``call()`` in the worker thread, then ``then(result)`` back on the loop."""
        worker = self._worker
        if worker is None:
            return

        def run() -> T:
            self._worker_thread = threading.get_ident()
            return call()

        def deliver(done: cf.Future[T]) -> None:
            try:
                result = done.result()
            except cf.CancelledError:
                return
            except Exception:
                log.exception("beat: the scheduling loop failed; it stops")
                return
            self._post(functools.partial(then, result))

        try:
            worker.submit(run).add_done_callback(deliver)
        except RuntimeError:  # the worker is shut down: so is the scheduler
            return

    def _stop_loop(self, wait: bool) -> None:
        """The worker releases the leader lock after its call in progress (core.stop() has
        ended a wait already); the loop's timer is cancelled on the loop. A listener that
        shuts down from within that call (it runs in the worker) cannot wait for it."""
        worker, self._worker = self._worker, None
        self._post(self._cancel_timer)
        if worker is None:
            return
        released = worker.submit(self.core.shutdown)
        worker.shutdown(wait=False)
        if wait and threading.get_ident() != self._worker_thread:
            released.result()
