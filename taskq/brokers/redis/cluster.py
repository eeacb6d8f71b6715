"""How the Redis broker spreads its calls over a Redis Cluster (docs/scaling.md).

A mixin of RedisBroker. Every key of one queue shares a hash tag (``RedisBroker._q``), so a
script call that touches one queue stays in one slot; a call that touched several queues on
a single server becomes one call per queue here: fetch claims queue by queue (highest lane
first within what was taken), publish, ack, requeue and extend group their messages by
queue. A single server takes none of these paths (``clustered`` is False): its calls stay
one round trip for all queues.

A blocking read cannot wait on streams of several slots at once: with several queues on a
cluster the fetcher waits on each queue in turn for ``BLOCK_SLICE`` (a message on another
queue waits at most that long per queue before a fetcher sees it).
"""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from typing import Any, Protocol, TypeVar

import redis

from taskq.brokers.base import Delivery, Publication
from taskq.brokers.redis.connection import RedisConnector
from taskq.brokers.redis.scripts import PUBLISH, PUBLISH_CHUNK
from taskq.errors import BrokerError

__all__ = ["BLOCK_SLICE", "PUBLISH_CHUNK", "ClusterRouting", "_Found"]

BLOCK_SLICE = 0.05  # seconds a multi-queue fetcher on a cluster blocks on one queue at a time

T = TypeVar("T")


@dataclass(slots=True)
class _Found:
    """What a claim call learned besides the messages: when the next delayed message is due
    (overall, and per queue), which lane streams exist (those a blocking read waits on), and,
    when it took nothing, where each of its streams ends (watch.py)."""

    next_due: float | None
    lanes: list[str]
    dues: dict[str, float] = field(default_factory=dict)
    tails: dict[str, str] | None = None  # stream -> id of its last entry
    owners: dict[str, str] = field(default_factory=dict)  # stream -> its queue (with tails)


class _Broker(Protocol):
    """What these methods use of RedisBroker."""

    clustered: bool
    wait_replicas: int
    wait_timeout: float
    _conn: RedisConnector

    @property
    def client(self) -> redis.Redis: ...
    @property
    def registry_key(self) -> str: ...
    def _q(self, queue: str) -> str: ...
    def lane_key(self, queue: str, lane: int) -> str: ...
    def _errors(self, what: str) -> AbstractContextManager[None]: ...
    def _stale(self, queues: set[str]) -> list[str]: ...
    def _publish_script_args(
        self, items: Sequence[Publication], register: list[str]
    ) -> tuple[list[str], list[Any]]: ...
    def _claim(self, queues: list[str], max_count: int, mark: bool = False) -> tuple[list[Delivery], _Found]: ...
    def _block(self, queues: list[str], max_count: int, deadline: float, found: _Found) -> list[Delivery]: ...


def _by_queue(items: Sequence[T], queue_of: Any) -> list[list[T]]:
    """Items grouped by queue, each group in the order given."""
    groups: dict[str, list[T]] = defaultdict(list)
    for item in items:
        groups[queue_of(item)].append(item)
    return list(groups.values())


def _lane(delivery: Delivery) -> int:
    return int(delivery.tag[0].rsplit(":", 1)[1])


class ClusterRouting:
    def _per_slot(self: _Broker, deliveries: Sequence[Delivery]) -> list[Sequence[Delivery]]:
        """One group on a single server; one per queue (one slot each) on a cluster."""
        if not self.clustered:
            return [deliveries]
        return list(_by_queue(deliveries, lambda d: d.queue))

    def _claim_each(self: _Broker, queues: list[str], max_count: int) -> tuple[list[Delivery], _Found]:
        """The fetch script once per queue, in the order given, until the batch is full."""
        taken: list[Delivery] = []
        next_due: float | None = None
        lanes: list[str] = []
        for queue in queues:
            if len(taken) >= max_count:
                break  # a full batch returns at once: the blocking read (which needs lanes) is skipped
            got, found = self._claim([queue], max_count - len(taken), mark=True)
            taken += got
            lanes += found.lanes
            if found.next_due is not None and (next_due is None or found.next_due < next_due):
                next_due = found.next_due
        taken.sort(key=lambda d: -_lane(d))  # stable: highest lane first, then queue order
        return taken, _Found(next_due, lanes)

    def _block_each(self: _Broker, queues: list[str], max_count: int, deadline: float, found: _Found) -> list[Delivery]:
        """Block on each queue's streams in turn, a slice at a time, until one answers."""
        while True:
            for queue in queues:
                now = time.monotonic()
                if deadline - now <= 0.001:
                    return []
                own = [lane for lane in found.lanes if lane.startswith(self._q(queue) + ":")]
                part = _Found(found.next_due, own or [self.lane_key(queue, 0)])
                got = self._block([queue], max_count, min(deadline, now + BLOCK_SLICE), part)
                if got:
                    return got

    def _publish_routed(self: _Broker, items: Sequence[Publication], registered: list[str]) -> None:
        """Publish script calls one queue at a time on a cluster (each in its queue's slot),
        each followed by WAIT on its connection when ``wait_replicas`` asks for it."""
        groups = _by_queue(items, lambda item: item.queue) if self.clustered else [items]
        for group in groups:
            for start in range(0, len(group), PUBLISH_CHUNK):
                chunk = group[start : start + PUBLISH_CHUNK]
                stale = self._stale({item.queue for item in chunk})
                # The registry is in another slot on a cluster: added to below, by itself.
                keys, argv = self._publish_script_args(chunk, [] if self.clustered else stale)
                call = ("EVAL", PUBLISH, len(keys), *keys, *argv)
                if self.wait_replicas:
                    what = "redis broker publish"
                    self._conn.confirmed(BrokerError, what, call, keys[0], self.wait_replicas, self.wait_timeout)
                else:
                    self._conn.direct(BrokerError, "redis broker publish", *call)
                if stale and self.clustered:
                    with self._errors("publish"):
                        self.client.sadd(self.registry_key, *stale)
                registered += stale
