"""Sends events from a background thread, so a task never waits on the broker for them.

One sender per dispatcher and process (a fork starts a new one: threads do not survive it).
``put`` appends to a bounded queue and returns; the thread takes whatever has gathered and
hands it to the bus in one ``publish_many`` (on Redis one pipelined round trip for the lot,
where one PUBLISH each cost a round trip per event, three per task). A full queue drops the
event and counts it, with one log line per WARN_EVERY seconds: events are for watching and
must never slow or fail a task. ``flush`` (called at a worker child's exit and at
interpreter exit) sends what is queued, bounded by a timeout.
"""

from __future__ import annotations

import atexit
import logging
import os
import threading
import time
import weakref
from collections import deque
from collections.abc import Callable
from typing import Any

from taskq.events.bus import EventBus

log = logging.getLogger("taskq.events")
QUEUE_MAX = 10_000  # events held while the broker is slow; past this they are dropped
BATCH_MAX = 500  # events handed to the bus at once
WARN_EVERY = 30.0  # seconds between two "events dropped" lines
FLUSH_TIMEOUT = 5.0  # seconds flush() waits for the queue to empty

_senders: weakref.WeakSet[BackgroundSender] = weakref.WeakSet()


def publish_all(bus: EventBus, events: list[dict[str, Any]]) -> None:
    """Hand ``events`` to ``bus`` in one go where it can take a batch, else one by one."""
    publish_many: Callable[[list[dict[str, Any]]], None] | None = getattr(bus, "publish_many", None)
    if publish_many is not None:
        publish_many(events)
        return
    for event in events:
        bus.publish(event)


class BackgroundSender:
    def __init__(self, bus: Callable[[], EventBus], limit: int = QUEUE_MAX) -> None:
        self._bus = bus
        self._limit = limit
        self._queue: deque[dict[str, Any]] = deque()
        self._ready = threading.Condition(threading.Lock())
        self._in_flight = 0  # events taken off the queue, not yet handed to the bus
        self._closed = False
        self.dropped = 0
        self._warned = 0.0
        self._pid = os.getpid()
        self._thread = threading.Thread(target=self._run, name="taskq-events", daemon=True)
        self._thread.start()
        _senders.add(self)

    @property
    def alive(self) -> bool:
        """False in a forked child (the thread stayed in the parent) or once closed."""
        return self._pid == os.getpid() and not self._closed

    def put(self, event: dict[str, Any]) -> None:
        with self._ready:
            if len(self._queue) >= self._limit:
                self._drop()
                return
            self._queue.append(event)
            if len(self._queue) == 1:
                self._ready.notify_all()  # the thread, not only a flush() that waits too

    def _drop(self) -> None:
        self.dropped += 1
        now = time.monotonic()
        if now - self._warned > WARN_EVERY:
            self._warned = now
            log.warning("Events are being dropped: %d queued, %d dropped so far", len(self._queue), self.dropped)

    def _run(self) -> None:
        while True:
            with self._ready:
                while not self._queue and not self._closed:
                    self._ready.wait()
                if not self._queue:
                    return
                batch = [self._queue.popleft() for _ in range(min(len(self._queue), BATCH_MAX))]
                self._in_flight = len(batch)
            try:
                publish_all(self._bus(), batch)  # the bus drops with a log line on a broker error
            except Exception:
                log.exception("Sending events failed")
            finally:
                with self._ready:
                    self._in_flight = 0
                    self._ready.notify_all()

    def flush(self, timeout: float = FLUSH_TIMEOUT) -> bool:
        """Wait until every queued event went to the bus; False if ``timeout`` ran out."""
        if self._pid != os.getpid():
            return True
        deadline = time.monotonic() + timeout
        with self._ready:
            while self._queue or self._in_flight:
                left = deadline - time.monotonic()
                if left <= 0 or not self._thread.is_alive():
                    return False
                self._ready.wait(left)
        return True

    def close(self, timeout: float = FLUSH_TIMEOUT) -> None:
        """Send what is queued (up to ``timeout``), then end the thread."""
        if self._pid != os.getpid():
            return
        self.flush(timeout)
        with self._ready:
            self._closed = True
            self._queue.clear()
            self._ready.notify_all()
        self._thread.join(timeout)


def flush_all(timeout: float = FLUSH_TIMEOUT) -> None:
    """Send every sender's queued events in this process (a worker child calls it before os._exit)."""
    for sender in list(_senders):
        sender.flush(timeout)


atexit.register(flush_all)
