"""Claims a Redis consumer owns: settled, kept alive or given up by owner (a mixin of RedisBroker).

A claim is the consumer group's pending entry, owned by this process's consumer name. Every
call here touches only entries that name still owns: a claim taken over by another consumer
while this one stalled is left to its new owner. ``extend_owner`` keeps another process's
claims alive (the prefork supervisor for its children, keeper.py for a threads or solo
worker); ``abandon`` hands claims to a name nobody keeps, so they come back at once, counted.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from contextlib import AbstractContextManager
from typing import Any, Protocol

from taskq.brokers.base import Delivery
from taskq.brokers.redis.connection import RedisConnector
from taskq.brokers.redis.scripts import ABANDON, EXTEND, EXTEND_OWNER, GROUP, LANES, REQUEUE


class _Broker(Protocol):
    """What these methods use of RedisBroker."""

    clustered: bool
    recovery_check: float
    _conn: RedisConnector
    _index_read: tuple[float, set[str]]

    @property
    def consumer(self) -> str: ...
    def claims_key(self, queue: str) -> str: ...
    def queue_of_lane(self, key: str) -> str: ...
    def lane_key(self, queue: str, lane: int) -> str: ...
    def _errors(self, what: str) -> AbstractContextManager[None]: ...
    def _per_slot(self, deliveries: Sequence[Delivery]) -> list[Sequence[Delivery]]: ...
    def _run(self, source: str, keys: Sequence[str], args: Sequence[Any]) -> Any: ...
    def _script(self, source: str) -> Any: ...
    def _owned(self, source: str, deliveries: Sequence[Delivery], what: str) -> int: ...
    def _indexed(self) -> set[str]: ...


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
        # Due at once in the claims index (they are indexed already: taken by a fetch script):
        # the next fetch on their queue takes them back, rather than the next scheduled look.
        with self._errors("abandon"):
            pipe = self._conn.blocking.pipeline(transaction=False)
            for d in deliveries:
                pipe.zadd(self.claims_key(d.queue), {d.tag[0]: time.time()})
            pipe.execute()

    def _indexed(self: _Broker) -> set[str]:
        """The lanes in the claims index, read once for a round over several owners (the
        prefork supervisor's): a claim taken since is kept by the next round, well within
        the claim timeout."""
        now = time.monotonic()
        read_at, names = getattr(self, "_index_read", (-1.0, set()))
        if now - read_at > min(0.2, self.recovery_check / 10):
            indexed: Any = self._conn.blocking.zrange(self.claims_key(""), 0, -1)
            names = {_text(name) for name in indexed}
            self._index_read = (now, names)
        return set(names)

    def extend_owner(self: _Broker, owner: str, queues: Sequence[str]) -> int:
        """Extend every claim of consumer ``owner`` (another process's) on these queues' lanes.
        On the non-retrying connection: the prefork supervisor calls this from its loop, which
        must not wait out the command pool's retries while Redis is away."""
        with self._errors("extend_owner"):
            script, kept = self._script(EXTEND_OWNER), 0
            if not self.clustered:  # only lanes that may hold claims: 10,000 idle queues cost one read
                wanted = set(queues)
                keys = [key for key in self._indexed() if self.queue_of_lane(key) in wanted]
                calls = [keys] if keys else []
            else:
                calls = [[self.lane_key(queue, lane) for lane in range(LANES)] for queue in queues]
            for keys in calls:
                kept += int(script(keys=keys, args=[GROUP, owner], client=self._conn.blocking))
            return kept


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value
