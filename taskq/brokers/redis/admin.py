"""Inspection and administration of the Redis broker's queues and dead letters.

A mixin of RedisBroker (kept apart so each module stays small): queue lengths, the queue
registry, purge, and the dead-letter store (list, requeue, purge). Key layout: redis.md.
"""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import AbstractContextManager
from typing import Any, Protocol

import redis

from taskq.brokers.base import DeadLetter
from taskq.brokers.redis import entry
from taskq.brokers.redis.scripts import GROUP, LANES, PURGE, REQUEUE_DEAD


class _Broker(Protocol):
    """What these methods use of RedisBroker."""

    claim_timeout: float
    clustered: bool

    @property
    def client(self) -> redis.Redis: ...
    @property
    def registry_key(self) -> str: ...
    def lane_key(self, queue: str, lane: int) -> str: ...
    def delayed_key(self, queue: str) -> str: ...
    def lanes_key(self, queue: str) -> str: ...
    def wake_key(self, queue: str) -> str: ...
    def dead_key(self, queue: str) -> str: ...
    def _errors(self, what: str) -> AbstractContextManager[None]: ...
    def _run(self, source: str, keys: Sequence[str], args: Sequence[Any]) -> Any: ...
    def _known_queues(self) -> list[str]: ...
    def _dead_queues(self, queue: str | None) -> list[str]: ...


class RedisAdmin:
    def queue_length(self: _Broker, queue: str) -> int:
        with self._errors("queue_length"):
            pipe = self.client.pipeline(transaction=False)
            for lane in range(LANES):
                pipe.xlen(self.lane_key(queue, lane))
            pipe.zcard(self.delayed_key(queue))
            return sum(int(n) for n in pipe.execute())

    def _known_queues(self: _Broker) -> list[str]:
        return sorted(_s(name) for name in self.client.smembers(self.registry_key))

    def queues(self: _Broker) -> list[str]:
        with self._errors("queues"):
            names = self._known_queues()
            pipe = self.client.pipeline(transaction=False)
            for queue in names:
                for lane in range(LANES):
                    pipe.xlen(self.lane_key(queue, lane))
                pipe.zcard(self.delayed_key(queue))
                pipe.xlen(self.dead_key(queue))
            counts = pipe.execute()
        per = LANES + 2
        return [q for i, q in enumerate(names) if sum(counts[i * per : (i + 1) * per])]

    def purge(self: _Broker, queue: str) -> int:
        with self._errors("purge"):
            keys = [*(self.lane_key(queue, lane) for lane in range(LANES)), self.delayed_key(queue)]
            return int(self._run(PURGE, keys, [GROUP, int(self.claim_timeout * 1000)]))

    def _dead_queues(self: _Broker, queue: str | None) -> list[str]:
        return [queue] if queue is not None else self._known_queues()

    def dead_letters(self: _Broker, queue: str | None = None, limit: int = 100) -> list[DeadLetter]:
        with self._errors("dead_letters"):
            names = self._dead_queues(queue)
            pipe = self.client.pipeline(transaction=False)
            for name in names:
                pipe.xrange(self.dead_key(name), count=limit)
            found: list[DeadLetter] = []
            for name, entries in zip(names, pipe.execute(), strict=True):
                for _, f in entries:
                    raw = entry.full(bytes(f[b"m"]))  # what leaves Redis is the full envelope
                    found.append(DeadLetter(_s(f[b"id"]), name, _s(f[b"reason"]), float(f[b"at"]), raw))
        found.sort(key=lambda d: d.failed_at)
        return found[:limit]

    def dead_letter_count(self: _Broker, queue: str) -> int:
        with self._errors("dead_letter_count"):
            return int(self.client.xlen(self.dead_key(queue)))

    def requeue_dead_letters(self: _Broker, queue: str | None = None, ids: Sequence[str] = ()) -> int:
        with self._errors("requeue_dead_letters"):
            moved = 0
            for name in self._dead_queues(queue):
                lanes = (self.lane_key(name, lane) for lane in range(LANES))
                keys = [self.dead_key(name), *lanes, self.lanes_key(name), self.wake_key(name)]
                moved += int(self._run(REQUEUE_DEAD, keys, list(ids)))
            return moved

    def purge_dead_letters(self: _Broker, queue: str | None = None) -> int:
        with self._errors("purge_dead_letters"):
            # A transaction must stay in one slot: on a cluster, each queue is counted apart.
            pipe = self.client.pipeline(transaction=not self.clustered)
            for name in self._dead_queues(queue):
                pipe.xlen(self.dead_key(name))
                pipe.delete(self.dead_key(name))
            return sum(int(n) for n in pipe.execute()[0::2])



def _s(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value
