"""In-process broker for tests and single-process use: every promise, no persistence.

Brokers with the same ``memory://name`` URL in one process share their queues, so a
producer and a threads-pool worker meet; other processes cannot see them.
"""

from __future__ import annotations

import heapq
import itertools
import threading
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field

from taskq.brokers.base import DeadLetter, Delivery, Publication, decode_delivery
from taskq.config import Settings
from taskq.envelope import Envelope


@dataclass
class _Message:
    queue: str
    raw: bytes
    priority: int
    redeliveries: int = 0
    claim_until: float | None = None


@dataclass
class _State:
    cond: threading.Condition = field(default_factory=threading.Condition)
    ready: dict[str, list[tuple[int, int, int]]] = field(default_factory=dict)  # queue -> heap
    delayed: list[tuple[float, int, int]] = field(default_factory=list)
    messages: dict[int, _Message] = field(default_factory=dict)
    claimed: set[int] = field(default_factory=set)
    dead: list[DeadLetter] = field(default_factory=list)
    seq: itertools.count[int] = field(default_factory=itertools.count)


_STATES: dict[str, _State] = {}
_STATES_LOCK = threading.Lock()


class MemoryBroker:
    counts_redeliveries = True

    def __init__(self, url: str = "memory://", settings: Settings | None = None) -> None:
        self.url = url
        self.recovery_time = (settings or Settings()).recovery_time
        with _STATES_LOCK:
            self._s = _STATES.setdefault(url, _State())

    def _push_ready(self, msg_id: int) -> None:
        msg = self._s.messages[msg_id]
        heapq.heappush(self._s.ready.setdefault(msg.queue, []), (-msg.priority, msg_id, msg_id))

    def _add(self, queue: str, envelope: Envelope, eta: float | None) -> None:
        msg_id = next(self._s.seq)
        self._s.messages[msg_id] = _Message(queue, envelope.to_bytes(), envelope.priority)
        if eta is not None and eta > time.time():
            heapq.heappush(self._s.delayed, (eta, msg_id, msg_id))
        else:
            self._push_ready(msg_id)

    def publish(self, queue: str, envelope: Envelope, eta: float | None = None) -> None:
        with self._s.cond:
            self._add(queue, envelope, eta)
            self._s.cond.notify_all()

    def publish_many(self, items: Sequence[Publication]) -> None:
        items = list(items)  # built (send_many builds lazily) before any is added: all or none
        with self._s.cond:
            for item in items:
                self._add(item.queue, item.envelope, item.eta)
            self._s.cond.notify_all()

    def _promote(self, now: float) -> float | None:
        """Move due delayed messages and expired claims to ready; return the next due time."""
        s = self._s
        while s.delayed and s.delayed[0][0] <= now:
            _, _, msg_id = heapq.heappop(s.delayed)
            if msg_id in s.messages:
                self._push_ready(msg_id)
        for msg_id in [m for m in s.claimed if (s.messages[m].claim_until or 0) < now]:
            s.claimed.discard(msg_id)
            msg = s.messages[msg_id]
            msg.claim_until = None
            msg.redeliveries += 1
            self._push_ready(msg_id)
        nexts = [s.delayed[0][0]] if s.delayed else []
        nexts += [s.messages[m].claim_until or now for m in s.claimed]
        return min(nexts) if nexts else None

    def fetch(self, queues: Sequence[str], max_count: int, timeout: float) -> list[Delivery]:
        deadline = time.monotonic() + timeout
        with self._s.cond:
            while True:
                now = time.time()
                next_due = self._promote(now)
                taken = self._take(queues, max_count, now)
                if taken:
                    return taken
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return []
                if next_due is not None:
                    remaining = min(remaining, max(next_due - now, 0.001))
                self._s.cond.wait(remaining)

    def _take(self, queues: Sequence[str], max_count: int, now: float) -> list[Delivery]:
        s = self._s
        out: list[Delivery] = []
        while len(out) < max_count:
            heads = [(s.ready[q][0], q) for q in queues if s.ready.get(q)]
            if not heads:
                break
            _, queue = min(heads)  # highest priority, then oldest, across the queues
            _, _, msg_id = heapq.heappop(s.ready[queue])
            msg = s.messages.get(msg_id)
            if msg is None or msg_id in s.claimed:
                continue
            msg.claim_until = now + self.recovery_time
            s.claimed.add(msg_id)
            out.append(decode_delivery(msg.raw, queue, msg_id, msg.redeliveries))
        return out

    def ack(self, deliveries: Sequence[Delivery]) -> None:
        with self._s.cond:
            for d in deliveries:
                self._s.claimed.discard(d.tag)
                self._s.messages.pop(d.tag, None)

    def requeue(self, deliveries: Sequence[Delivery]) -> None:
        with self._s.cond:
            for d in deliveries:
                if d.tag in self._s.claimed:
                    self._s.claimed.discard(d.tag)
                    self._s.messages[d.tag].claim_until = None
                    self._push_ready(d.tag)
            self._s.cond.notify_all()

    def dead_letter(self, delivery: Delivery, reason: str) -> None:
        with self._s.cond:
            msg = self._s.messages.pop(delivery.tag, None)
            self._s.claimed.discard(delivery.tag)
            if msg is not None:
                env_id = delivery.envelope.id if delivery.envelope else ""
                self._s.dead.append(DeadLetter(env_id or str(uuid.uuid4()), msg.queue, reason, time.time(), msg.raw))

    def extend(self, deliveries: Sequence[Delivery]) -> None:
        with self._s.cond:
            until = time.time() + self.recovery_time
            for d in deliveries:
                if d.tag in self._s.claimed:
                    self._s.messages[d.tag].claim_until = until

    def queue_length(self, queue: str) -> int:
        with self._s.cond:
            return sum(1 for m in self._s.messages.values() if m.queue == queue)

    def queues(self) -> list[str]:
        with self._s.cond:
            names = {m.queue for m in self._s.messages.values()} | {d.queue for d in self._s.dead}
            return sorted(names)

    def purge(self, queue: str) -> int:
        with self._s.cond:
            doomed = [i for i, m in self._s.messages.items() if m.queue == queue and i not in self._s.claimed]
            for msg_id in doomed:
                del self._s.messages[msg_id]
            return len(doomed)

    def dead_letters(self, queue: str | None = None, limit: int = 100) -> list[DeadLetter]:
        with self._s.cond:
            return [d for d in self._s.dead if queue is None or d.queue == queue][:limit]

    def dead_letter_count(self, queue: str) -> int:
        with self._s.cond:
            return sum(1 for d in self._s.dead if d.queue == queue)

    def requeue_dead_letters(self, queue: str | None = None, ids: Sequence[str] = ()) -> int:
        with self._s.cond:
            chosen = [d for d in self._s.dead if (queue is None or d.queue == queue) and (not ids or d.id in ids)]
            for d in chosen:
                self._s.dead.remove(d)
                msg_id = next(self._s.seq)
                self._s.messages[msg_id] = _Message(d.queue, d.raw, 0)
                self._push_ready(msg_id)
            self._s.cond.notify_all()
            return len(chosen)

    def purge_dead_letters(self, queue: str | None = None) -> int:
        with self._s.cond:
            before = len(self._s.dead)
            self._s.dead = [d for d in self._s.dead if queue is not None and d.queue != queue]
            return before - len(self._s.dead)

    def close(self) -> None:
        """Nothing to release: the queues live as long as the process."""
