"""Any kombu transport as a broker: ``kombu+redis://``, ``kombu+memory://``, ``kombu+sqs://``...

kombu brokers are for reach: they keep kombu's own semantics (docs/kombu.md says, promise
by promise, what holds). With ``kombu+redis://`` messages sit in Redis exactly as Celery's
Redis transport leaves them, so a Celery producer or worker shares the queues.

* Priority: taskq's 9-first is translated on transports whose order is 0-first (Redis:
  kombu priority = 9 - taskq priority, bucketed by kombu into 0/3/6/9).
* countdown/eta: kombu has no broker-side delay. As in Celery, a message is published at
  once with its eta and waits, claimed, in the fetching process until due. On Redis a claim
  older than the transport's ``visibility_timeout`` (default 1 h) is delivered again.
* extend() is a no-op: kombu cannot renew a claim.
* Dead letters go to ``<queue>.dead`` (a plain queue) with the reason in the headers.

One connection publishes and one consumes, each behind its own lock (kombu connections
are not thread-safe); fetch drains in short slices so acks from other threads get in.
"""

from __future__ import annotations

import heapq
import itertools
import logging
import os
import threading
import time
import uuid
from collections import deque
from collections.abc import Sequence
from typing import Any

import kombu.connection
import kombu.entity
import kombu.message
import kombu.messaging

from taskq.brokers.base import DeadLetter, Delivery, Publication
from taskq.config import Settings
from taskq.display import redact
from taskq.envelope import Envelope
from taskq.errors import BrokerError, ConfigurationError, PublishError

log = logging.getLogger("taskq.brokers.kombu")
# kombu is only partly annotated (mypy --strict rejects its untyped calls): its objects are Any here.
Connection: Any = kombu.connection.Connection
Consumer: Any = kombu.messaging.Consumer
Producer: Any = kombu.messaging.Producer
Exchange: Any = kombu.entity.Exchange
Queue: Any = kombu.entity.Queue
Message: Any = kombu.message.Message
ETA_HEADER = "x-taskq-eta"
REASON_HEADER = "x-taskq-reason"
FAILED_AT_HEADER = "x-taskq-failed-at"
ORIGIN_HEADER = "x-taskq-queue"
_OURS = (ETA_HEADER, REASON_HEADER, FAILED_AT_HEADER, ORIGIN_HEADER, "redelivered")
_PASSED_PROPERTIES = ("correlation_id", "reply_to", "priority", "expiration", "message_id", "type", "app_id")
_REVERSED_PRIORITY = ("redis", "rediss", "sentinel")
_SLICE = 0.1  # longest a fetch holds the consumer lock at a time
_GATHER = 0.01  # how long a fetch that has something waits for more


class KombuBroker:
    counts_redeliveries = False  # kombu only flags a redelivery; the worker counts

    def __init__(self, url: str, settings: Settings | None = None) -> None:
        self.url = url
        self.settings = settings or Settings()
        scheme, sep, rest = url.partition("://")
        transport = scheme[len("kombu+") :]
        if not scheme.startswith("kombu+") or not transport or not sep:
            raise ConfigurationError(f"broker URL {redact(url)!r} is not kombu+TRANSPORT://...")
        self.kombu_url = f"{transport}://{rest}"
        self.reverse_priority = transport in _REVERSED_PRIORITY
        self.transport_options = dict(self.settings.broker_transport_options)
        self._pid = os.getpid()
        self._publish_lock = threading.Lock()
        self._consume_lock = threading.RLock()
        self._publisher: Any = None
        self._consumer_conn: Any = None
        self._consumer: Any = None
        self._consumed: tuple[str, ...] = ()
        self._prefetch = 0
        self._inbox: deque[tuple[str, Any]] = deque()  # (queue, kombu Message)
        self._delayed: list[tuple[float, int, str, Any]] = []  # eta heap, claimed meanwhile
        self._held = 0
        self._seq = itertools.count()
        self._known: set[str] = set()

    # -- connections ---------------------------------------------------------------------------
    def _check_fork(self) -> None:
        if os.getpid() != self._pid:  # the parent's sockets are not ours
            self._pid = os.getpid()
            self._publisher = self._consumer_conn = self._consumer = None
            self._consumed = ()
            self._inbox.clear()
            self._delayed.clear()

    def _connection(self) -> Any:
        return Connection(self.kombu_url, transport_options=self.transport_options)

    def _queue(self, name: str) -> Any:
        return Queue(name, Exchange(""), routing_key=name, durable=True)

    # -- publishing ------------------------------------------------------------------------------
    def publish(self, queue: str, envelope: Envelope, eta: float | None = None) -> None:
        self.publish_many([Publication(queue, envelope, eta)])

    def publish_many(self, items: Sequence[Publication]) -> None:
        for item in items:
            extra = {ETA_HEADER: item.eta} if item.eta is not None and item.eta > time.time() else {}
            self._send(item.queue, item.envelope, extra)

    def _send(self, queue: str, envelope: Envelope, extra: dict[str, Any]) -> None:
        self._check_fork()
        properties = {k: v for k, v in envelope.properties.items() if k in _PASSED_PROPERTIES and v is not None}
        priority = int(properties.pop("priority", None) or 0)
        if self.reverse_priority:  # 9 - p: no priority (0) must not become kombu-Redis's most urgent
            priority = 9 - max(0, min(9, priority))
        with self._publish_lock:
            try:
                if self._publisher is None:
                    self._publisher = self._connection()
                producer = Producer(self._publisher.default_channel)
                producer.publish(
                    envelope.body,
                    exchange="",
                    routing_key=queue,
                    declare=[self._queue(queue)],
                    content_type=envelope.content_type,
                    content_encoding=envelope.content_encoding,
                    headers={**envelope.headers, **extra},
                    priority=priority,
                    delivery_mode=2,
                    retry=True,
                    retry_policy={"max_retries": 3, "interval_start": 0.1, "interval_step": 0.5},
                    **properties,
                )
            except Exception as exc:
                self._drop_publisher()
                raise PublishError(f"kombu could not publish to {queue!r}: {exc!r}") from None
        self._known.add(queue)

    def _drop_publisher(self) -> None:
        if self._publisher is not None:
            try:
                self._publisher.release()
            except Exception:
                pass
        self._publisher = None

    # -- consuming ---------------------------------------------------------------------------------
    def fetch(self, queues: Sequence[str], max_count: int, timeout: float) -> list[Delivery]:
        self._check_fork()
        deadline = time.monotonic() + timeout
        out: list[Delivery] = []
        while True:
            with self._consume_lock:
                self._ensure_consumer(tuple(queues), max_count)
                now = time.time()
                while self._delayed and self._delayed[0][0] <= now:
                    _, _, queue, message = heapq.heappop(self._delayed)
                    self._inbox.append((queue, message))
                while self._inbox and len(out) < max_count:
                    queue, message = self._inbox.popleft()
                    delivery = self._delivery(queue, message)
                    if delivery is not None:
                        out.append(delivery)
                        self._held += 1
                if len(out) >= max_count:
                    return out
                if out:  # gather what is already there (kombu delivers one message per drain)
                    if not self._drain(_GATHER):
                        return out
                    continue
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return out
                wait = min(_SLICE, remaining)
                if self._delayed:
                    wait = max(0.001, min(wait, self._delayed[0][0] - now))
                self._drain(wait)

    def _ensure_consumer(self, queues: tuple[str, ...], max_count: int) -> None:
        # Delayed messages stay claimed while they wait: leave room for them, as Celery does.
        room = max_count + len(self._delayed) + len(self._inbox) + self._held
        try:
            if self._consumer is None or self._consumed != queues:
                if self._consumer is not None:
                    self._consumer.cancel()
                if self._consumer_conn is None:
                    self._consumer_conn = self._connection()
                channel = self._consumer_conn.channel()
                self._consumer = Consumer(
                    # on_message: the raw message; kombu neither decodes nor checks its content type
                    channel,
                    queues=[self._queue(q) for q in queues],
                    on_message=self._on_message,
                    no_ack=False,
                )
                self._consumer.qos(prefetch_count=room)
                self._consumer.consume()
                self._consumed, self._prefetch = queues, room
                self._known.update(queues)
            elif room > self._prefetch:  # takes effect at once on kombu's virtual transports
                self._consumer.qos(prefetch_count=room)
                self._prefetch = room
        except Exception as exc:
            self._reset_consumer()
            raise BrokerError(f"kombu could not consume {list(queues)}: {exc!r}") from None

    def _drain(self, wait: float) -> bool:
        """Let kombu deliver (into the inbox); False when nothing came within ``wait``."""
        assert self._consumer_conn is not None
        try:
            self._consumer_conn.drain_events(timeout=wait)
            return True
        except TimeoutError:
            return False
        except Exception as exc:
            self._reset_consumer()
            raise BrokerError(f"kombu connection failed: {exc!r}") from None

    def _reset_consumer(self) -> None:
        conn, self._consumer_conn, self._consumer, self._consumed = self._consumer_conn, None, None, ()
        self._inbox.clear()
        self._delayed.clear()
        self._held = 0
        if conn is not None:
            try:
                conn.release()
            except Exception:
                pass

    def _on_message(self, message: Any) -> None:
        queue = str(message.delivery_info.get("routing_key") or "")
        if self._consumed and queue not in self._consumed:
            queue = self._consumed[0]
        eta = message.headers.get(ETA_HEADER)
        if isinstance(eta, (int, float)) and eta > time.time():
            heapq.heappush(self._delayed, (float(eta), next(self._seq), queue, message))
        else:
            self._inbox.append((queue, message))

    def _delivery(self, queue: str, message: Any) -> Delivery | None:
        envelope = self._envelope(message)
        redelivered = message.delivery_info.get("redelivered") or message.headers.get("redelivered")
        return Delivery(envelope, queue, message, 1 if redelivered else 0)

    def _envelope(self, message: Any) -> Envelope:
        headers = {k: v for k, v in (message.headers or {}).items() if k not in _OURS}
        properties = {k: v for k, v in message.properties.items() if k in _PASSED_PROPERTIES and v is not None}
        given = properties.get("priority")
        if isinstance(given, int) and self.reverse_priority:  # another type: parse dead-letters it
            properties["priority"] = 9 - max(0, min(9, given))
        body = message.body if isinstance(message.body, bytes) else str(message.body).encode("utf-8")
        return Envelope(
            headers=headers,
            body=body,
            content_type=message.content_type or "application/json",
            content_encoding=message.content_encoding or "utf-8",
            properties=properties,
        )

    def _messages(self, deliveries: Sequence[Delivery]) -> list[Any]:
        return [d.tag for d in deliveries if isinstance(d.tag, Message)]

    def ack(self, deliveries: Sequence[Delivery]) -> None:
        with self._consume_lock:
            for message in self._messages(deliveries):
                self._settle(message.ack)

    def _settle(self, action: Any) -> None:
        try:
            action()
            self._held = max(0, self._held - 1)
        except Exception as exc:
            raise BrokerError(f"kombu could not settle a message: {exc!r}") from None

    def requeue(self, deliveries: Sequence[Delivery]) -> None:
        """A copy goes back, then the original is acked: a reject would mark it redelivered."""
        for delivery in deliveries:
            if isinstance(delivery.tag, Message):
                self._send(delivery.queue, self._envelope(delivery.tag), {})
                with self._consume_lock:
                    self._settle(delivery.tag.ack)

    def dead_letter(self, delivery: Delivery, reason: str) -> None:
        message = delivery.tag
        if not isinstance(message, Message):
            raise BrokerError(f"not a kombu delivery: {delivery!r}")
        extra = {REASON_HEADER: reason, FAILED_AT_HEADER: time.time(), ORIGIN_HEADER: delivery.queue}
        self._send(delivery.queue + ".dead", self._envelope(message), extra)
        with self._consume_lock:
            self._settle(message.ack)

    def extend(self, deliveries: Sequence[Delivery]) -> None:
        """kombu cannot renew a claim: on Redis a claim outlives visibility_timeout only."""

    # -- inspection ------------------------------------------------------------------------------
    def _size(self, name: str) -> int:
        with self._publish_lock:
            try:
                if self._publisher is None:
                    self._publisher = self._connection()
                # Not passive: kombu's Redis transport answers a passive declare 404 under a
                # global_keyprefix; declaring our own queue is harmless on every transport.
                _, count, _ = self._queue(name).bind(self._publisher.default_channel).queue_declare()
                return int(count)
            except Exception as exc:
                self._drop_publisher()
                raise BrokerError(f"kombu could not inspect {name!r}: {exc!r}") from None

    def queue_length(self, queue: str) -> int:
        with self._consume_lock:
            local = sum(1 for q, _ in self._inbox if q == queue) + sum(1 for e in self._delayed if e[2] == queue)
        return self._size(queue) + local

    def queues(self) -> list[str]:
        known = {*self._known, self.settings.task_default_queue, *self.settings.queue_arguments}
        return sorted(q for q in known if not q.endswith(".dead") and (self._size(q) or self._size(q + ".dead")))

    def purge(self, queue: str) -> int:
        with self._publish_lock:
            try:
                if self._publisher is None:
                    self._publisher = self._connection()
                return int(self._queue(queue).bind(self._publisher.default_channel).purge() or 0)
            except Exception as exc:
                self._drop_publisher()
                raise BrokerError(f"kombu could not purge {queue!r}: {exc!r}") from None

    def _take_dead(self, queue: str, limit: int | None) -> tuple[Any, list[Any]]:
        """basic.get (unacked) up to ``limit`` dead letters, on a connection of their own."""
        conn = self._connection()
        bound = self._queue(queue + ".dead").bind(conn.default_channel)
        taken: list[Any] = []
        while limit is None or len(taken) < limit:
            message = bound.get(no_ack=False)
            if message is None:
                break
            taken.append(message)
        return conn, taken

    def _dead_letter_of(self, queue: str, message: Any) -> DeadLetter:
        headers = message.headers or {}
        envelope = self._envelope(message)
        failed_at = headers.get(FAILED_AT_HEADER)
        return DeadLetter(
            id=envelope.id or str(uuid.uuid4()),
            queue=str(headers.get(ORIGIN_HEADER) or queue),
            reason=str(headers.get(REASON_HEADER) or "unknown"),
            failed_at=float(failed_at) if isinstance(failed_at, (int, float)) else time.time(),
            raw=envelope.to_bytes(),
        )

    def dead_letters(self, queue: str | None = None, limit: int = 100) -> list[DeadLetter]:
        out: list[DeadLetter] = []
        for name in [queue] if queue else self.queues():
            conn, taken = self._take_dead(name, limit - len(out))
            try:
                out += [self._dead_letter_of(name, m) for m in taken]
                for message in taken:
                    message.requeue()
            finally:
                conn.release()
            if len(out) >= limit:
                break
        return out

    def dead_letter_count(self, queue: str) -> int:
        return self._size(queue + ".dead")

    def requeue_dead_letters(self, queue: str | None = None, ids: Sequence[str] = ()) -> int:
        wanted, moved = set(ids), 0
        for name in [queue] if queue else self.queues():
            conn, taken = self._take_dead(name, None)
            try:
                for message in taken:
                    letter = self._dead_letter_of(name, message)
                    if wanted and letter.id not in wanted:
                        message.requeue()
                        continue
                    self._send(letter.queue, self._envelope(message), {})
                    message.ack()
                    moved += 1
            finally:
                conn.release()
        return moved

    def purge_dead_letters(self, queue: str | None = None) -> int:
        return sum(self.purge(name + ".dead") for name in ([queue] if queue else self.queues()))

    def close(self) -> None:
        if os.getpid() != self._pid:
            self._check_fork()
            return
        with self._consume_lock:
            self._reset_consumer()
        with self._publish_lock:
            self._drop_publisher()
