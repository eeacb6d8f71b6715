"""``app.events``: consume a running fleet's events from a program, as Celery's
``app.events.Receiver(connection, handlers={...}).capture(...)`` does."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

from taskq.events.bus import EventBus, create_bus
from taskq.events.event import LamportClock

if TYPE_CHECKING:
    from taskq.app import TaskQ

Handler = Callable[[dict[str, Any]], Any]


class EventReceiver:
    """Calls ``handlers[event['type']]`` (else ``handlers['*']``) for each event received.

    Subscribed from construction on: events published after it was made are not missed.
    """

    def __init__(self, bus: EventBus, handlers: dict[str, Handler] | None = None) -> None:
        self.handlers = dict(handlers or {})
        self.clock = LamportClock()
        self._subscription = bus.subscribe()
        self.should_stop = False

    def itercapture(self, limit: int | None = None, timeout: float | None = None) -> Iterator[dict[str, Any]]:
        """Yield events until ``limit`` were seen, ``timeout`` seconds passed or should_stop is set."""
        deadline = None if timeout is None else time.monotonic() + timeout
        seen = 0
        while not self.should_stop:
            left = 1.0 if deadline is None else min(1.0, deadline - time.monotonic())
            if left <= 0:
                return
            for event in self._subscription.read(left):
                self.clock.adjust(event.get("clock") or 0)
                self._dispatch(event)
                yield event
                seen += 1
                if limit is not None and seen >= limit:
                    return

    def capture(self, limit: int | None = None, timeout: float | None = None) -> None:
        for _ in self.itercapture(limit=limit, timeout=timeout):
            pass

    def _dispatch(self, event: dict[str, Any]) -> None:
        handler = self.handlers.get(event["type"]) or self.handlers.get("*")
        if handler is not None:
            handler(event)

    def close(self) -> None:
        self._subscription.close()

    def __enter__(self) -> EventReceiver:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class Events:
    """``app.events``: ``Receiver(handlers=...)`` opens its own subscription on the broker."""

    def __init__(self, app: TaskQ) -> None:
        self.app = app

    def Receiver(self, handlers: dict[str, Handler] | None = None) -> EventReceiver:
        return EventReceiver(create_bus(self.app.conf), handlers)
