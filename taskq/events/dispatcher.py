"""The sending side: one bus per process (reopened after a fork), one Lamport clock.

``EventDispatcher.send(type, **fields)`` fills in Celery's standard fields (the clock moves
on at once, in the caller) and queues the event for the process's background sender
(taskq.events.sender), which publishes it: the caller never waits on the broker."""

from __future__ import annotations

import os
import threading
from typing import TYPE_CHECKING, Any

from taskq.events.bus import EventBus, create_bus
from taskq.events.event import LamportClock, make_event
from taskq.events.sender import FLUSH_TIMEOUT, BackgroundSender
from taskq.forklocks import renew_after_fork

if TYPE_CHECKING:
    from taskq.config import Settings


class EventDispatcher:
    def __init__(self, conf: Settings, hostname: str) -> None:
        self.conf = conf
        self.hostname = hostname
        self.clock = LamportClock()
        self._bus: EventBus | None = None
        self._pid = 0
        self._sender: BackgroundSender | None = None
        self._lock = threading.Lock()
        # A prefork supervisor's control thread sends heartbeats through the dispatcher its
        # children send task events with: it may hold these locks when the pool forks.
        renew_after_fork(self, _renew_locks)

    def bus(self) -> EventBus:
        with self._lock:
            if self._bus is None or self._pid != os.getpid():
                self._bus, self._pid = create_bus(self.conf), os.getpid()  # never a parent's connection
            return self._bus

    def sender(self) -> BackgroundSender:
        sender = self._sender
        if sender is not None and sender.alive:
            return sender
        with self._lock:
            if self._sender is None or not self._sender.alive:
                self._sender = BackgroundSender(self.bus)
            return self._sender

    def send(self, type_: str, **fields: Any) -> dict[str, Any]:
        event = make_event(type_, self.hostname, self.clock, **fields)
        self.sender().put(event)
        return event

    def flush(self, timeout: float = FLUSH_TIMEOUT) -> bool:
        """Wait until the events sent so far went to the broker; False if ``timeout`` ran out."""
        sender = self._sender
        return sender.flush(timeout) if sender is not None else True

    def close(self, timeout: float = FLUSH_TIMEOUT) -> None:
        """Send what is queued (up to ``timeout``), then close this process's connection."""
        with self._lock:
            sender, self._sender = self._sender, None
        if sender is not None:
            sender.close(timeout)
        with self._lock:
            if self._bus is not None and self._pid == os.getpid():
                self._bus.close()
            self._bus = None


def _renew_locks(dispatcher: EventDispatcher) -> None:
    dispatcher._lock = threading.Lock()
    dispatcher.clock.renew_lock()
