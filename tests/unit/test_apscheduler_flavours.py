"""Each scheduler flavour starts, fires a job on its default executor, and shuts down
cleanly. The optional ones skip (with the reason) where their library is not installed."""

from __future__ import annotations

import asyncio
import importlib.util
import os
import threading
import time
from collections.abc import Callable
from typing import Any

import pytest

import taskq.beat as tq
from taskq.beat.events import EVENT_JOB_ERROR, EVENT_JOB_EXECUTED, EVENT_SCHEDULER_SHUTDOWN, JobExecutionEvent


def needs(module: str, extra: str) -> pytest.MarkDecorator:
    missing = importlib.util.find_spec(module) is None
    return pytest.mark.skipif(missing, reason=f"{module} is not installed (pip install 'taskq[{extra}]')")


def wait_for(predicate: Callable[[], Any], timeout: float = 10.0, idle: Callable[[float], Any] = time.sleep) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        idle(0.01)


class Outcomes:
    """Collects what a listener sees: executed runs by job id, and the shutdown."""

    def __init__(self, scheduler: Any) -> None:
        self.executed: list[tuple[str, Any]] = []
        self.shut_down = threading.Event()
        scheduler.add_listener(self, EVENT_JOB_EXECUTED | EVENT_JOB_ERROR | EVENT_SCHEDULER_SHUTDOWN)

    def __call__(self, event: Any) -> None:
        if isinstance(event, JobExecutionEvent):
            assert event.exception is None, event.traceback
            self.executed.append((event.job_id, event.retval))
        elif event.code == EVENT_SCHEDULER_SHUTDOWN:
            self.shut_down.set()


def answer() -> int:
    return 42


def run_threaded_flavour(scheduler: Any, idle: Callable[[float], Any] = time.sleep) -> None:
    outcomes = Outcomes(scheduler)
    scheduler.add_job(answer, "interval", seconds=0.1, id="tick")
    scheduler.start()
    try:
        wait_for(lambda: ("tick", 42) in outcomes.executed, idle=idle)
    finally:
        scheduler.shutdown()
    assert outcomes.shut_down.is_set() and not scheduler.running


def test_blocking_scheduler() -> None:
    scheduler = tq.BlockingScheduler()
    outcomes = Outcomes(scheduler)
    scheduler.add_job(answer, "interval", seconds=0.1, id="tick")
    scheduler.add_listener(lambda event: scheduler.shutdown(), EVENT_JOB_EXECUTED)
    thread = threading.Thread(target=scheduler.start)
    thread.start()
    thread.join(timeout=10)
    assert not thread.is_alive() and ("tick", 42) in outcomes.executed
    assert outcomes.shut_down.is_set()


def test_background_scheduler() -> None:
    run_threaded_flavour(tq.BackgroundScheduler())


def test_asyncio_scheduler_runs_coroutine_jobs_on_the_loop() -> None:
    async def coroutine_job() -> str:
        await asyncio.sleep(0)
        return "async"

    async def main() -> None:
        scheduler = tq.AsyncIOScheduler()
        outcomes = Outcomes(scheduler)
        scheduler.add_job(coroutine_job, "interval", seconds=0.1, id="coro")
        scheduler.start()
        deadline = time.monotonic() + 10
        while ("coro", "async") not in outcomes.executed and time.monotonic() < deadline:
            await asyncio.sleep(0.01)
        scheduler.shutdown()
        await asyncio.wait_for(scheduler.wait_closed(), 5)
        assert ("coro", "async") in outcomes.executed and outcomes.shut_down.is_set()

    asyncio.run(main())


@needs("gevent", "gevent")
def test_gevent_scheduler_runs_jobs_as_greenlets() -> None:
    import gevent  # type: ignore[import-untyped]

    def in_greenlet() -> bool:
        return gevent.getcurrent() is not gevent.get_hub()

    scheduler = tq.GeventScheduler()
    outcomes = Outcomes(scheduler)
    scheduler.add_job(in_greenlet, "interval", seconds=0.1, id="green")
    scheduler.start()
    try:
        wait_for(lambda: ("green", True) in outcomes.executed, idle=gevent.sleep)
    finally:
        scheduler.shutdown()
    assert outcomes.shut_down.is_set()


@needs("twisted", "twisted")
def test_twisted_scheduler_runs_jobs_in_the_reactor_pool() -> None:
    from twisted.internet import reactor as global_reactor

    reactor: Any = global_reactor  # Twisted's interface types do not describe the reactor object
    scheduler = tq.TwistedScheduler(reactor=reactor)
    outcomes = Outcomes(scheduler)
    scheduler.add_job(answer, "interval", seconds=0.1, id="tick")

    def check() -> None:
        if ("tick", 42) in outcomes.executed or time.monotonic() > deadline:
            scheduler.shutdown()
            reactor.stop()
        else:
            reactor.callLater(0.02, check)

    deadline = time.monotonic() + 10
    reactor.callWhenRunning(scheduler.start)
    reactor.callLater(0.02, check)
    reactor.run(installSignalHandlers=False)
    assert ("tick", 42) in outcomes.executed and outcomes.shut_down.is_set()


@needs("tornado", "tornado")
def test_tornado_scheduler_runs_jobs_from_the_ioloop() -> None:
    from tornado.ioloop import IOLoop

    async def main() -> None:
        scheduler = tq.TornadoScheduler(io_loop=IOLoop.current())
        outcomes = Outcomes(scheduler)
        scheduler.add_job(answer, "interval", seconds=0.1, id="tick")
        scheduler.start()
        deadline = time.monotonic() + 10
        while ("tick", 42) not in outcomes.executed and time.monotonic() < deadline:
            await asyncio.sleep(0.01)
        scheduler.shutdown()
        assert ("tick", 42) in outcomes.executed and outcomes.shut_down.is_set()

    asyncio.run(main())


@needs("PySide6", "qt")
def test_qt_scheduler_beside_a_qt_event_loop() -> None:
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    from PySide6.QtCore import QCoreApplication, QTimer

    app = QCoreApplication.instance() or QCoreApplication([])
    scheduler = tq.QtScheduler()
    outcomes = Outcomes(scheduler)
    scheduler.add_job(answer, "interval", seconds=0.1, id="tick")
    scheduler.start()
    deadline = time.monotonic() + 10
    poll = QTimer()
    poll.timeout.connect(lambda: app.quit() if outcomes.executed or time.monotonic() > deadline else None)
    poll.start(10)
    app.exec()
    poll.stop()
    scheduler.shutdown()
    assert ("tick", 42) in outcomes.executed and outcomes.shut_down.is_set()


@needs("tornado", "tornado")
def test_event_loop_flavour_pauses_resumes_and_starts_again() -> None:
    """On an event-loop flavour (here Tornado's): a paused scheduler takes no pass until
    resume(), which wakes it; after shutdown() it starts again on a fresh core, and the
    callbacks of the first run do not drive the second."""
    from tornado.ioloop import IOLoop

    async def main() -> None:
        scheduler = tq.TornadoScheduler(io_loop=IOLoop.current())
        outcomes = Outcomes(scheduler)
        scheduler.start(paused=True)
        scheduler.add_job(answer, "interval", seconds=0.05, id="tick")
        await asyncio.sleep(0.5)
        assert outcomes.executed == []  # paused: due runs wait
        scheduler.resume()
        deadline = time.monotonic() + 10
        while not outcomes.executed and time.monotonic() < deadline:
            await asyncio.sleep(0.01)
        assert ("tick", 42) in outcomes.executed
        first_core = scheduler.core
        scheduler.shutdown()
        assert not first_core.is_leader and not scheduler.running
        outcomes.executed.clear()
        scheduler.start()
        assert scheduler.core is not first_core
        while not outcomes.executed and time.monotonic() < deadline + 10:
            await asyncio.sleep(0.01)
        assert ("tick", 42) in outcomes.executed
        scheduler.shutdown()

    asyncio.run(main())


@needs("tornado", "tornado")
@pytest.mark.timeout(30)
def test_event_loop_flavour_shut_down_by_a_listener_of_the_loop() -> None:
    """A listener called from the scheduling loop's own calls (SUBMITTED is one) may shut the
    scheduler down: shutdown() does not wait for the very call it runs in.

    That shutdown runs in the scheduler's worker thread, not on this loop: ``running`` turns
    False at its start and SHUTDOWN is dispatched at its end, and the lock is let go after the
    worker's call returns. So the test waits for each of those, with a deadline, rather than
    reading them the moment ``running`` turns False or after a fixed sleep (both raced under
    load)."""
    from tornado.ioloop import IOLoop

    from taskq.beat.events import EVENT_JOB_SUBMITTED

    async def main() -> None:
        scheduler = tq.TornadoScheduler(io_loop=IOLoop.current())
        outcomes = Outcomes(scheduler)
        scheduler.add_listener(lambda event: scheduler.shutdown(), EVENT_JOB_SUBMITTED)
        scheduler.add_job(answer, "interval", seconds=0.05, id="tick")
        scheduler.start()
        deadline = time.monotonic() + 10
        while not outcomes.shut_down.is_set() and time.monotonic() < deadline:
            await asyncio.sleep(0.01)
        assert not scheduler.running and outcomes.shut_down.is_set()
        while scheduler.core.is_leader and time.monotonic() < deadline:
            await asyncio.sleep(0.01)
        assert not scheduler.core.is_leader  # the lock is let go once that call returns

    asyncio.run(main())
