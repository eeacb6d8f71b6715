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
from collections.abc import Callable, Sequence
from types import FrameType

from taskq.app import TaskQ
from taskq.worker.consumer import Consumer
from taskq.worker.keeper import KeeperProcess

log = logging.getLogger("taskq.worker")


class ThreadPool:
    """N consumer threads in this process; ``concurrency=1`` in the main thread is the solo pool."""

    def __init__(self, app: TaskQ, queues: Sequence[str], concurrency: int, prefetch: int) -> None:
        self.app = app
        self.queues = list(queues)
        self.consumers = [Consumer(app, queues, prefetch) for _ in range(max(1, concurrency))]
        self._signals = 0

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        self._signals += 1
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
        keeper = KeeperProcess(self.app, self.queues)
        keeper.start()  # before the consumer threads: a task holding the GIL stops them all
        try:
            on_ready()
            if len(self.consumers) == 1:
                self.consumers[0].run()
                return 0
            threads = [threading.Thread(target=c.run, name=f"taskq-consumer-{i}") for i, c in enumerate(self.consumers)]
            for t in threads:
                t.start()
            for t in threads:
                while t.is_alive():  # join with a timeout so signals reach the main thread
                    t.join(0.2)
            return 0
        finally:
            keeper.stop()
