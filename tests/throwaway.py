"""The one body of every fixture that starts throwaway servers (a Redis cluster, sentinels, a
RabbitMQ node or cluster): start them, hand them to the test, end them however it ends."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Protocol, TypeVar


class Throwaway(Protocol):
    def start(self) -> None: ...
    def stop(self) -> None: ...


S = TypeVar("S", bound=Throwaway)


def serve(servers: S, end: Callable[[], object] | None = None) -> Iterator[S]:
    """``yield from serve(...)`` in a fixture. ``end`` replaces ``stop`` (a node whose data
    folder goes too: ``remove``); it runs after a start that failed half-way too."""
    try:
        servers.start()
        yield servers
    finally:
        (end or servers.stop)()
