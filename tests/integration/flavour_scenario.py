"""One scheduler flavour, tried as a new user would: ``python -m tests.integration.flavour_scenario
FLAVOUR LIBRARY`` (LIBRARY: ``taskq.beat`` or ``apscheduler``, the same script for both).

A job due 0.2 s from now is added and the scheduler started; then the application holds its
event loop off for a second (the main thread blocks, as a program does between start() and
``app.exec()``). Then the loop runs: the job fires; a job added from another thread wakes the
scheduler and fires too; the scheduler shuts down. BlockingScheduler and BackgroundScheduler
have no application loop: for them the second passes before start() (APScheduler's own
threads are their loops). Prints one JSON line: what the scheduler submitted or ran during the
held second, what ran in all, in order, and whether it still runs after shutdown().

Each run is its own process: the Twisted reactor and gevent's hub are process-global.
"""

from __future__ import annotations

import asyncio
import importlib
import json
import os
import sys
import threading
import time
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from typing import Any

HOLD = 1.0  # how long the application keeps its loop from running
DEADLINE = 20.0  # for the first job to fire once the loop runs
SECOND_WAIT = 5.0  # for the job added from another thread (due 0.1 s after it is added)
MODULES = {
    "blocking": "BlockingScheduler",
    "background": "BackgroundScheduler",
    "asyncio": "AsyncIOScheduler",
    "gevent": "GeventScheduler",
    "twisted": "TwistedScheduler",
    "tornado": "TornadoScheduler",
    "qt": "QtScheduler",
}


class Run:
    """The scheduler under test, what fired, and the second job added from another thread."""

    def __init__(self, flavour: str, library: str, **options: Any) -> None:
        module = importlib.import_module(f"{library}.schedulers.{flavour}")
        events = importlib.import_module(f"{library}.events")
        self.scheduler = getattr(module, MODULES[flavour])(timezone="UTC", **options)
        self.fired: list[str] = []  # jobs that ran (EXECUTED)
        self.submitted: list[str] = []  # jobs the scheduler handed to an executor (SUBMITTED)
        self.lock = threading.Lock()
        self.executed_code = events.EVENT_JOB_EXECUTED
        self.scheduler.add_listener(self._on_event, events.EVENT_JOB_EXECUTED | events.EVENT_JOB_SUBMITTED)
        self.add("first", 0.2)
        self.second_added: float | None = None  # when

    def add(self, job_id: str, delay: float) -> None:
        when = datetime.now(timezone.utc) + timedelta(seconds=delay)
        self.scheduler.add_job(str, "date", run_date=when, id=job_id, misfire_grace_time=60)

    def _on_event(self, event: Any) -> None:
        with self.lock:
            (self.fired if event.code == self.executed_code else self.submitted).append(event.job_id)

    def acted(self) -> list[str]:
        """What the scheduler did so far: jobs submitted or run (a decision taken off the
        application's loop shows as SUBMITTED even where the job itself waits for the loop)."""
        with self.lock:
            return sorted(set(self.submitted) | set(self.fired))

    def seen(self, job_id: str) -> bool:
        with self.lock:
            return job_id in self.fired

    def advance(self) -> bool:
        """Called now and then while the loop runs: True once both jobs fired. After the first
        fires, the second is added from a thread of its own (runtime change, any thread); it
        is given SECOND_WAIT seconds."""
        if self.seen("first") and self.second_added is None:
            self.second_added = time.monotonic()
            adder = threading.Thread(target=self.add, args=("second", 0.1))
            adder.start()
            adder.join()
        waited_out = self.second_added is not None and time.monotonic() - self.second_added > SECOND_WAIT
        return self.seen("second") or waited_out

    def report(self, held: list[str]) -> None:
        core = getattr(self.scheduler, "core", None)  # taskq's: it let go of the leader lock
        leader = core.is_leader if core is not None else False
        found = {"held": held, "fired": self.fired, "running": bool(self.scheduler.running), "leader": leader}
        print(json.dumps(found), flush=True)


def until(done: Callable[[], bool], idle: Callable[[float], Any] = time.sleep) -> None:
    deadline = time.monotonic() + DEADLINE
    while not done() and time.monotonic() < deadline:
        idle(0.02)


def blocking(library: str) -> None:
    run = Run("blocking", library)
    time.sleep(HOLD)  # no loop yet: start() is the loop
    held = run.acted()

    def stop_when_done() -> None:
        until(run.advance)
        run.scheduler.shutdown(wait=False)

    threading.Thread(target=stop_when_done, daemon=True).start()
    run.scheduler.start()  # returns after shutdown()
    run.report(held)


def background(library: str) -> None:
    run = Run("background", library)
    time.sleep(HOLD)  # before start(): its loop is its own thread, started by start()
    held = run.acted()
    run.scheduler.start()
    until(run.advance)
    run.scheduler.shutdown()
    run.report(held)


def asyncio_flavour(library: str) -> None:
    async def main() -> None:
        run = Run("asyncio", library)
        run.scheduler.start()
        time.sleep(HOLD)  # the coroutine blocks: the event loop does not run
        held = run.acted()
        deadline = time.monotonic() + DEADLINE
        while not run.advance() and time.monotonic() < deadline:
            await asyncio.sleep(0.02)
        run.scheduler.shutdown()
        if hasattr(run.scheduler, "wait_closed"):
            await asyncio.wait_for(run.scheduler.wait_closed(), 5)
        await asyncio.sleep(0.1)  # APScheduler's shutdown completes on the loop
        run.report(held)

    asyncio.run(main())


def gevent_flavour(library: str) -> None:
    import gevent  # type: ignore[import-untyped]

    run = Run("gevent", library)
    run.scheduler.start()
    time.sleep(HOLD)  # not gevent.sleep: the hub does not run
    held = run.acted()
    until(run.advance, idle=gevent.sleep)
    run.scheduler.shutdown()
    run.report(held)


def poll_until_done(run: Run, call_later: Callable[[float, Callable[[], None]], Any], stop: Callable[[], None]) -> None:
    """Schedule checks on a loop that is not running yet: advance the run every 20 ms until it
    is done or the deadline passes, then shut the scheduler down and stop the loop a moment
    later (APScheduler's shutdown completes on the loop)."""
    deadline = time.monotonic() + DEADLINE

    def check() -> None:
        if run.advance() or time.monotonic() > deadline:
            run.scheduler.shutdown()
            call_later(0.1, stop)
        else:
            call_later(0.02, check)

    call_later(0.02, check)


def twisted_flavour(library: str) -> None:
    from twisted.internet import reactor as global_reactor

    reactor: Any = global_reactor
    run = Run("twisted", library, reactor=reactor)
    run.scheduler.start()
    time.sleep(HOLD)  # the reactor is not running yet
    held = run.acted()
    poll_until_done(run, reactor.callLater, reactor.stop)
    reactor.run(installSignalHandlers=False)
    run.report(held)


def tornado_flavour(library: str) -> None:
    from tornado.ioloop import IOLoop

    io_loop = IOLoop(make_current=False)
    run = Run("tornado", library, io_loop=io_loop)
    run.scheduler.start()
    time.sleep(HOLD)  # the IOLoop is not running yet
    held = run.acted()
    poll_until_done(run, io_loop.call_later, io_loop.stop)
    io_loop.start()
    io_loop.close(all_fds=False)
    run.report(held)


def qt_flavour(library: str) -> None:
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    from PySide6.QtCore import QCoreApplication, QTimer

    app = QCoreApplication.instance() or QCoreApplication([])
    run = Run("qt", library)
    run.scheduler.start()
    time.sleep(HOLD)  # before app.exec(): the Qt event loop is not running
    held = run.acted()
    deadline = time.monotonic() + DEADLINE
    poll = QTimer()

    def check() -> None:
        if run.advance() or time.monotonic() > deadline:
            poll.stop()
            run.scheduler.shutdown()
            QTimer.singleShot(100, app.quit)  # let a shutdown that completes on the loop do so
    poll.timeout.connect(check)
    poll.start(20)
    app.exec()
    run.report(held)


SCENARIOS: dict[str, Callable[[str], None]] = {
    "blocking": blocking,
    "background": background,
    "asyncio": asyncio_flavour,
    "gevent": gevent_flavour,
    "twisted": twisted_flavour,
    "tornado": tornado_flavour,
    "qt": qt_flavour,
}

if __name__ == "__main__":
    flavour_name, library_name = sys.argv[1], sys.argv[2]
    if flavour_name not in SCENARIOS or library_name not in ("taskq.beat", "apscheduler"):
        print(f"usage: flavour_scenario {{{','.join(SCENARIOS)}}} {{taskq.beat,apscheduler}}", file=sys.stderr)
        sys.exit(2)
    SCENARIOS[flavour_name](library_name)
