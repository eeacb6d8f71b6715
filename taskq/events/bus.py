"""The event seam: publish one event; subscribe and read events as they come.

A bus is opened per process and is not shared across a fork. Publishing never raises into
the caller: an event that cannot be sent is dropped with a log line (events are for
watching; the task's outcome is in the result backend)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any, Protocol

from taskq.sidechannel import family

if TYPE_CHECKING:
    from taskq.config import Settings


class Subscription(Protocol):
    def read(self, timeout: float) -> Iterator[dict[str, Any]]:
        """The events that arrive within ``timeout`` seconds (at least one wait)."""
        ...

    def close(self) -> None: ...


class EventBus(Protocol):
    def publish(self, event: dict[str, Any]) -> None: ...

    def subscribe(self) -> Subscription: ...

    def close(self) -> None: ...


def create_bus(conf: Settings) -> EventBus:
    kind = family(conf.broker_url)
    if kind == "sqlite":
        from taskq.events.sqlite_bus import SQLiteEventBus

        return SQLiteEventBus(conf.broker_url)
    if kind == "postgresql":
        from taskq.events.postgres_bus import PostgresEventBus

        return PostgresEventBus(conf.broker_url, conf.recovery_time)
    if kind == "memory":
        from taskq.events.memory_bus import MemoryEventBus

        return MemoryEventBus()
    from taskq.events.kombu_bus import KombuEventBus

    return KombuEventBus(conf)
