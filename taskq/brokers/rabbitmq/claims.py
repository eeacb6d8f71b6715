"""The consumer side of one Link: deliveries waiting in the inbox, and claims handed out.

RabbitMQ pushes messages to a consumer up to its prefetch; they wait here in the inbox
until ``fetch`` hands them out, and from then on they are *claims*: held until acked,
returned or dead-lettered. A claim that nobody extends within the recovery time expires:
it is returned to its queue with basic.nack (RabbitMQ marks it redelivered), exactly as
if its worker had died. Deliveries are appended on the I/O thread and taken by any
thread, under one lock.

A consumer's prefetch is fixed when it starts (a non-global basic.qos applies to later
consumers only). When a fetch needs more room than the consumer has, a larger consumer
replaces it; the old one's deliveries stay valid, since acks belong to the channel.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass

import pika
import pika.spec

from taskq.brokers.rabbitmq.link import Link

log = logging.getLogger("taskq.brokers.rabbitmq")


@dataclass(eq=False)
class Claim:
    """A delivery of one consumer channel; ``Delivery.tag`` on RabbitMQ."""

    link: Link
    delivery_tag: int
    consumer_tag: str
    queue: str
    properties: pika.BasicProperties
    body: bytes
    redelivered: bool
    deadline: float = 0.0
    settled: bool = False  # acked, returned, expired or lost with its channel


@dataclass
class _Consumer:
    tag: str
    queue: str
    prefetch: int
    outstanding: int = 0  # delivered and not settled: in the inbox or held


class Claims:
    def __init__(self, link: Link, recovery_time: float) -> None:
        self.link = link
        self.recovery_time = recovery_time
        self._cond = threading.Condition()
        self._inbox: deque[Claim] = deque()
        self._held: dict[int, Claim] = {}
        # Delivery tags of the consumer channel not settled yet (inbox and held): a batch of
        # acks below the lowest other one is one basic.ack with multiple=True.
        self._unsettled: set[int] = set()
        self._consumers: dict[str, _Consumer] = {}  # queue -> its current consumer
        self._by_tag: dict[str, _Consumer] = {}  # every consumer tag we started, current or not
        self._manage = threading.Lock()
        self._taking = 0  # threads waiting in take()
        link.on_consumer_lost = self._on_lost
        link.on_consumer_cancelled = self._on_cancelled
        self._tick = max(0.05, min(1.0, recovery_time / 4))
        self._next_check = time.monotonic() + self._tick
        link.post(lambda: link.call_later(self._tick, self._expire))

    # -- consumers -------------------------------------------------------------------------
    def ensure_consumers(self, queues: Sequence[str], max_count: int, base_prefetch: int) -> None:
        """Consume every queue asked for with room for ``max_count`` more; stop the others."""
        with self._manage:
            for queue in queues:
                with self._cond:
                    current = self._consumers.get(queue)
                    needed = max(base_prefetch, max_count)
                    if current is not None:
                        held = current.outstanding - sum(1 for c in self._inbox if c.consumer_tag == current.tag)
                        if held + max_count <= current.prefetch:
                            continue
                        needed = max(needed, current.prefetch, held + max_count)
                consumer = _Consumer(f"taskq-{uuid.uuid4().hex}", queue, needed)
                with self._cond:
                    self._by_tag[consumer.tag] = consumer  # before any delivery can arrive
                self.link.consume(queue, needed, consumer.tag, self._deliver)
                with self._cond:
                    # The channel may have been lost (and _by_tag cleared) while the consume
                    # was on its way: then this consumer is unknown, and the next fetch starts
                    # a fresh one.
                    known = self._by_tag.get(consumer.tag) is consumer
                    if known:
                        self._consumers[queue] = consumer
                if not known:
                    self.link.cancel(consumer.tag)
                    continue
                if current is not None:
                    self.link.cancel(current.tag)
            for queue in [q for q in self._consumers if q not in queues]:
                self.link.cancel(self._consumers.pop(queue).tag)

    def stop_consuming(self) -> None:
        """Cancel every consumer; once this returns, RabbitMQ sends this process nothing more."""
        with self._manage:
            with self._cond:
                consumers, self._consumers = list(self._consumers.values()), {}
            for consumer in consumers:
                self.link.cancel(consumer.tag)

    def _deliver(self, method: pika.spec.Basic.Deliver, properties: pika.BasicProperties, body: bytes) -> None:
        with self._cond:
            consumer = self._by_tag.get(method.consumer_tag)
            if consumer is None:
                # A consumer forgotten when its channel was lost (a consume started in that
                # window): hand the delivery back now. Left unacked and untracked, a later
                # multiple-ack on this channel would ack it without it ever running.
                self.link.nack_consumed_now([method.delivery_tag])
                return
            consumer.outstanding += 1
            self._unsettled.add(method.delivery_tag)
            claim = Claim(
                self.link,
                method.delivery_tag,
                method.consumer_tag,
                consumer.queue,  # not the routing key, which differs when routed by an exchange
                properties,
                body,
                bool(method.redelivered),
            )
            self._inbox.append(claim)
            self._cond.notify()

    def _on_cancelled(self, consumer_tag: str) -> None:
        with self._cond:
            for queue, consumer in list(self._consumers.items()):
                if consumer.tag == consumer_tag:
                    del self._consumers[queue]  # e.g. the queue was deleted; the next fetch re-consumes
                    log.warning("RabbitMQ cancelled the consumer of queue %r", queue)

    def _on_lost(self, reason: str) -> None:
        """The channel or connection is gone: RabbitMQ returns everything it had sent us."""
        with self._cond:
            lost = len(self._held) + len(self._inbox)
            for claim in [*self._held.values(), *self._inbox]:
                claim.settled = True
            self._held.clear()
            self._inbox.clear()
            self._unsettled.clear()
            self._consumers.clear()
            self._by_tag.clear()
            self._cond.notify_all()
        if lost:
            log.warning("%d delivered message(s) return to their queues (%s)", lost, reason)

    # -- handing out and settling ------------------------------------------------------------
    def take(self, queues: Sequence[str], max_count: int, timeout: float) -> list[Claim]:
        """Up to ``max_count`` deliveries of these queues, waiting up to ``timeout``."""
        deadline = time.monotonic() + timeout
        wanted = set(queues)
        with self._cond:
            self._taking += 1
            try:
                while True:
                    taken = self._take_from_inbox(wanted, max_count)
                    if taken:
                        deadline = time.monotonic() + self.recovery_time
                        for claim in taken:
                            claim.deadline = deadline
                            self._held[id(claim)] = claim
                        return taken
                    remaining = deadline - time.monotonic()
                    if remaining <= 0 or not self.link.alive:
                        return []
                    self._cond.wait(remaining)
            finally:
                self._taking -= 1

    @property
    def taking(self) -> bool:
        """A thread of this process waits in ``take``: it would take what arrives."""
        with self._cond:
            return self._taking > 0

    def _take_from_inbox(self, wanted: set[str], max_count: int) -> list[Claim]:
        """Remove and return up to ``max_count`` deliveries of ``wanted``, in order: one pass
        (removing each from the deque would cost a pass per claim)."""
        taken: list[Claim] = []
        kept: deque[Claim] = deque()
        for claim in self._inbox:
            (taken if len(taken) < max_count and claim.queue in wanted else kept).append(claim)
        if taken:
            self._inbox = kept
        return taken

    def waiting(self, queue: str | None = None) -> list[Claim]:
        """Deliveries not handed out yet (all, or of one queue), removed from the inbox."""
        with self._cond:
            out = [c for c in self._inbox if queue is None or c.queue == queue]
            for claim in out:
                self._inbox.remove(claim)
                self._held[id(claim)] = claim
                claim.deadline = time.monotonic() + self.recovery_time
            return out

    def counts(self, queue: str) -> int:
        """Deliveries of this queue that this process holds (inbox and claims)."""
        with self._cond:
            return sum(1 for c in [*self._inbox, *self._held.values()] if c.queue == queue)

    def extend(self, claims: Sequence[Claim]) -> None:
        deadline = time.monotonic() + self.recovery_time
        with self._cond:
            for claim in claims:
                if not claim.settled:
                    claim.deadline = deadline

    def settle(self, claims: Sequence[Claim], requeue: bool = False) -> int:
        """Ack (or return) claims still ours; returns how many. Expired or lost ones are skipped."""
        tags: list[int] = []
        with self._cond:
            for claim in claims:
                if claim.settled or claim.link is not self.link:
                    log.warning(
                        "Delivery %s of queue %r was already returned (its claim expired or its connection "
                        "closed); RabbitMQ delivers it again",
                        claim.delivery_tag,
                        claim.queue,
                    )
                    continue
                self._forget(claim)
                tags.append(claim.delivery_tag)
            if not tags:
                return 0
            if requeue:
                self.link.settle_consumed([], tags)
                return len(tags)
            # Every tag below the lowest one still unsettled is in this batch, or was settled by
            # a frame written before this one (frames are posted under this lock, in order): one
            # multiple-ack covers them. The rest go one by one.
            floor = min(self._unsettled, default=None)
            below = [tag for tag in tags if floor is None or tag < floor]
            upto = max(below) if len(below) > 1 else None
            self.link.settle_consumed([tag for tag in tags if upto is None or tag > upto], [], upto)
        return len(tags)

    def _forget(self, claim: Claim) -> None:
        claim.settled = True
        self._unsettled.discard(claim.delivery_tag)
        self._held.pop(id(claim), None)
        consumer = self._by_tag.get(claim.consumer_tag)
        if consumer is not None:
            consumer.outstanding -= 1

    def _expire(self) -> None:
        """On the I/O thread: return claims nobody extended within the recovery time."""
        if not self.link.alive:
            return
        now = time.monotonic()
        # Ran this late: the whole process stood still (a task holding the GIL in one C call
        # stops every thread, this one and the claim keepers too). Nobody could extend a
        # claim meanwhile, which says nothing of its holder: the deadlines move by as much.
        stalled = now - self._next_check - self._tick
        self._next_check = now + self._tick
        with self._cond:
            if stalled > 0:
                for claim in self._held.values():
                    claim.deadline += stalled
            expired = [c for c in self._held.values() if c.deadline < now]
            for claim in expired:
                self._forget(claim)
        if expired:
            log.warning("%d claim(s) expired unextended; returned to their queues", len(expired))
            self.link.nack_consumed_now([c.delivery_tag for c in expired])
        self.link.call_later(self._tick, self._expire)
