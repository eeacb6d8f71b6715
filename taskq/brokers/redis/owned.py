"""Claims a Redis consumer owns: settled, kept alive or given up by owner (a mixin of RedisBroker).

A claim is the consumer group's pending entry, owned by this process's consumer name. Every
call here touches only entries that name still owns: a claim taken over by another consumer
while this one stalled is left to its new owner. ``extend_owner`` keeps another process's
claims alive (the prefork supervisor for its children, keeper.py for a threads or solo
worker); ``abandon`` hands claims to a name nobody keeps, so they come back at once, counted.
"""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import AbstractContextManager
from typing import Any, Protocol

from taskq.brokers.base import Delivery
from taskq.brokers.redis.connection import RedisConnector
from taskq.brokers.redis.scripts import ABANDON, EXTEND, EXTEND_OWNER, GROUP, LANES, REQUEUE


class _Broker(Protocol):
    """What these methods use of RedisBroker."""

    clustered: bool
    _conn: RedisConnector

    @property
    def consumer(self) -> str: ...
    def lane_key(self, queue: str, lane: int) -> str: ...
    def _errors(self, what: str) -> AbstractContextManager[None]: ...
    def _per_slot(self, deliveries: Sequence[Delivery]) -> list[Sequence[Delivery]]: ...
    def _run(self, source: str, keys: Sequence[str], args: Sequence[Any]) -> Any: ...
    def _script(self, source: str) -> Any: ...
    def _owned(self, source: str, deliveries: Sequence[Delivery], what: str) -> int: ...


class OwnedClaims:
    def _owned(self: _Broker, source: str, deliveries: Sequence[Delivery], what: str) -> int:
        if not deliveries:
            return 0
        with self._errors(what):
            done = 0
            for group in self._per_slot(deliveries):
                keys = [d.tag[0] for d in group]
                done += int(self._run(source, keys, [GROUP, self.consumer, *(d.tag[1] for d in group)]))
            return done

    def requeue(self: _Broker, deliveries: Sequence[Delivery]) -> None:
        self._owned(REQUEUE, deliveries, "requeue")

    def extend(self: _Broker, deliveries: Sequence[Delivery]) -> None:
        self._owned(EXTEND, deliveries, "extend")

    @property
    def claim_owner(self: _Broker) -> str:
        return self.consumer

    def abandon(self: _Broker, deliveries: Sequence[Delivery]) -> None:
        self._owned(ABANDON, deliveries, "abandon")

    def extend_owner(self: _Broker, owner: str, queues: Sequence[str]) -> int:
        """Extend every claim of consumer ``owner`` (another process's) on these queues' lanes.
        On the non-retrying connection: the prefork supervisor calls this from its loop, which
        must not wait out the command pool's retries while Redis is away."""
        slots = [queues] if not self.clustered else [[queue] for queue in queues]
        with self._errors("extend_owner"):
            script, kept = self._script(EXTEND_OWNER), 0
            for group in slots:
                keys = [self.lane_key(queue, lane) for queue in group for lane in range(LANES)]
                kept += int(script(keys=keys, args=[GROUP, owner], client=self._conn.blocking))
            return kept
