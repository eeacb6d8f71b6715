"""Pools behind one small interface: ``run() -> exit code``, stopped by signals.

* solo: one consumer in the main thread.
* threads: N consumers, one thread each (one fetch loop per free slot).
* both fork a small claim keeper process at start (keeper.py): a task that holds the GIL
  stops every thread of its process, the claim keeper thread too.
* prefork: a supervisor process and N children, each with its own broker connection and
  fetch loop (see supervisor.py).

Signals: the first SIGTERM or SIGINT is a warm shutdown (stop fetching, return unstarted
messages, let running tasks finish within ``worker_shutdown_timeout``); a second one, or
the grace period running out, is a cold shutdown (running tasks go back to the queue).
"""

from __future__ import annotations

import logging
import signal
import threading
import time
from collections.abc import Callable, Sequence
from types import FrameType
from typing import TYPE_CHECKING

from taskq.app import TaskQ
from taskq.brokers.base import describe_error
from taskq.worker.consumer import Consumer
from taskq.worker.heartbeat import DeadConsumers
from taskq.worker.keeper import KeeperProcess
from taskq.worker.ratelimit import RateLimiter, SharedClocks
from taskq.worker.restarts import LIMIT, RestartPolicy

if TYPE_CHECKING:
    from taskq.control.stats import SharedStats
    from taskq.control.steering import Steering

log = logging.getLogger("taskq.worker")


class ThreadPool:
    """N consumer threads in this process; ``concurrency=1`` in the main thread is the solo pool.

    A consumer that dies is started again (restarts.py) and listed as dead for the health
    check meanwhile; a pool that lost every consumer returns 1. With ``steering`` (remote
    control's pool_grow/pool_shrink) it starts or warm-stops consumer threads while it runs;
    the solo pool, one consumer in the main thread, cannot."""

    def __init__(
        self, app: TaskQ, queues: Sequence[str], concurrency: int, prefetch: int, *, solo: bool = False,
        steering: Steering | None = None, stats: SharedStats | None = None,
    ) -> None:
        self.app = app
        self.queues = list(queues)
        self.prefetch = prefetch
        self.steering = steering
        self.stats = stats
        self._steered = steering.sequence if steering is not None else 0  # the size it starts with
        self.rates = RateLimiter(app, SharedClocks())  # one rate per task name for all consumers (per worker)
        self.consumers = [self._consumer() for _ in range(max(1, concurrency))]
        self.retired: set[int] = set()  # slots pool_shrink stopped (reused by pool_grow)
        # One consumer runs in the main thread unless the pool may grow.
        self.in_main_thread = len(self.consumers) == 1 and (solo or steering is None)
        self._signals = 0
        self._stopping = threading.Event()
        self._restarts = RestartPolicy()
        self._dead = DeadConsumers(app.conf.heartbeat_path)

    def _consumer(self) -> Consumer:
        consumer = Consumer(self.app, self.queues, self.prefetch)
        consumer.runner.rates = self.rates
        consumer.steering, consumer.stats = self.steering, self.stats
        return consumer

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        self._signals += 1
        self._stopping.set()
        if self._signals == 1:
            log.info("Warm shutdown (%s): finishing running tasks", signal.Signals(signum).name)
            for c in self.consumers:
                c.warm_stop()
            timer = threading.Timer(self.app.conf.worker_shutdown_timeout, self._cold)
            timer.daemon = True
            timer.start()
        else:
            self._cold()

    def _cold(self) -> None:
        log.warning("Cold shutdown: abandoning running tasks")
        for c in self.consumers:
            c.cold_stop()

    def install_signals(self) -> None:
        signal.signal(signal.SIGTERM, self._on_signal)
        signal.signal(signal.SIGINT, self._on_signal)
        signal.signal(signal.SIGQUIT, lambda s, f: self._cold())

    def run(self, on_ready: Callable[[], None] = lambda: None) -> int:
        self.install_signals()
        keeper = KeeperProcess(self.app, self.queues, self.steering)
        keeper.start()  # before the consumer threads: a task holding the GIL stops them all
        try:
            on_ready()
            return self._supervise(in_main_thread=self.in_main_thread)
        finally:
            self._dead.clear()
            keeper.stop()

    def _supervise(self, in_main_thread: bool) -> int:
        """Run every slot; start a consumer that died again; return 1 once none is left."""
        errors: dict[int, str | None] = {}  # slot -> why its consumer died; None: stopped
        running: dict[int, tuple[threading.Thread | None, float]] = {}
        due: dict[int, float] = dict.fromkeys(range(len(self.consumers)), 0.0)  # slot -> start at
        lost = 0
        while running or due:
            if self.steering is not None and self.steering.sequence != self._steered and not self._stopping.is_set():
                self._resize(self.steering, running, due)
            now = time.monotonic()
            for slot in [s for s, at in due.items() if at <= now and not self._stopping.is_set()]:
                del due[slot]
                if slot in errors:  # a restart: a fresh consumer (the old one's state died with it)
                    self.consumers[slot] = self._consumer()
                    if self._stopping.is_set():  # a signal came in between: it missed this one
                        self.consumers[slot].warm_stop()
                    self._dead.up(slot)
                errors.pop(slot, None)
                started = time.monotonic()
                if in_main_thread:
                    self._run_slot(slot, errors)
                    running[slot] = (None, started)
                else:
                    worker = threading.Thread(target=self._run_slot, args=(slot, errors), name=f"taskq-consumer-{slot}")
                    running[slot] = (worker, started)
                    worker.start()
            for slot, (thread, started) in list(running.items()):
                if thread is not None and thread.is_alive():
                    continue
                del running[slot]
                error = errors.get(slot)
                if error is None or self._stopping.is_set() or slot in self.retired:
                    continue
                delay = self._restarts.crashed(slot, started)
                self._dead.down(slot, error)
                if delay is None:
                    lost += 1
                    log.error("Consumer %d died %d times in a row at start; not started again", slot + 1, LIMIT)
                    continue
                log.error("Consumer %d died (%s); starting a new one in %.0fs", slot + 1, error, delay)
                due[slot] = time.monotonic() + delay
            if self._stopping.is_set():
                due.clear()
            if running or due:
                time.sleep(0.05)  # signal handlers run in this (main) thread meanwhile
        if lost and lost >= len(self.consumers) - len(self.retired):
            log.error("Every consumer is dead; the worker exits")
            return 1
        return 0

    def _resize(self, steering: Steering, running: dict[int, tuple[threading.Thread | None, float]],
                due: dict[int, float]) -> None:
        """Start or warm-stop consumers until as many run as remote control wants."""
        self._steered, wanted = steering.read()
        live = [s for s in range(len(self.consumers)) if s not in self.retired]
        for slot in reversed(live[wanted.size :]):  # shrink: the newest go first
            self.retired.add(slot)
            due.pop(slot, None)
            self.consumers[slot].warm_stop()  # it finishes its task and hands back what it holds
            self._dead.up(slot)
        for _ in range(wanted.size - len(live)):  # grow: a stopped slot whose thread ended, or a new one
            free = [s for s in sorted(self.retired) if s not in running and s not in due]
            slot = free[0] if free else len(self.consumers)
            if free:
                self.retired.discard(slot)  # its consumer is made anew as it starts (errors has it)
            else:
                self.consumers.append(self._consumer())
            due[slot] = 0.0
        if wanted.size != len(live):
            log.info("Pool size now %d (was %d)", wanted.size, len(live))

    def _run_slot(self, slot: int, errors: dict[int, str | None]) -> None:
        """Run a slot's consumer to its end; ``errors[slot]`` says why it died (None: it
        stopped as asked)."""
        try:
            self.consumers[slot].run()
            errors[slot] = None
        except BaseException as exc:  # SystemExit from a task included: the pool decides what follows
            log.exception("Consumer %d died", slot + 1)
            errors[slot] = describe_error(exc)
