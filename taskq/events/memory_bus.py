"""Events within one process (the memory:// broker): every subscriber gets every event."""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Iterator
from typing import Any

_subscribers: list[queue.SimpleQueue[dict[str, Any]]] = []
_lock = threading.Lock()


class MemoryEventBus:
    def publish(self, event: dict[str, Any]) -> None:
        with _lock:
            targets = list(_subscribers)
        for inbox in targets:
            inbox.put(dict(event))

    def subscribe(self) -> MemorySubscription:
        return MemorySubscription()

    def close(self) -> None:
        pass


class MemorySubscription:
    def __init__(self) -> None:
        self._inbox: queue.SimpleQueue[dict[str, Any]] = queue.SimpleQueue()
        with _lock:
            _subscribers.append(self._inbox)

    def read(self, timeout: float) -> Iterator[dict[str, Any]]:
        deadline = time.monotonic() + timeout
        while True:
            try:
                yield self._inbox.get(timeout=max(deadline - time.monotonic(), 0.0))
            except queue.Empty:
                return
            if self._inbox.empty():
                return

    def close(self) -> None:
        with _lock:
            if self._inbox in _subscribers:
                _subscribers.remove(self._inbox)
