"""The sending side: one bus per process (reopened after a fork), one Lamport clock.

``EventDispatcher.send(type, **fields)`` fills in Celery's standard fields and publishes."""

from __future__ import annotations

import os
import threading
from typing import TYPE_CHECKING, Any

from taskq.events.bus import EventBus, create_bus
from taskq.events.event import LamportClock, make_event

if TYPE_CHECKING:
    from taskq.config import Settings


class EventDispatcher:
    def __init__(self, conf: Settings, hostname: str) -> None:
        self.conf = conf
        self.hostname = hostname
        self.clock = LamportClock()
        self._bus: EventBus | None = None
        self._pid = 0
        self._lock = threading.Lock()

    def bus(self) -> EventBus:
        with self._lock:
            if self._bus is None or self._pid != os.getpid():
                self._bus, self._pid = create_bus(self.conf), os.getpid()  # never a parent's connection
            return self._bus

    def send(self, type_: str, **fields: Any) -> dict[str, Any]:
        event = make_event(type_, self.hostname, self.clock, **fields)
        self.bus().publish(event)
        return event

    def close(self) -> None:
        with self._lock:
            if self._bus is not None and self._pid == os.getpid():
                self._bus.close()
            self._bus = None
