"""Events on the ``celeryev`` exchange through kombu, byte for byte as Celery sends them.

Exchange ``celeryev``: topic on RabbitMQ (routing key = type with ``-`` -> ``.``); fanout on
Redis, which kombu maps to PUBLISH on ``/{db}.celeryev`` (celery/events/event.py
get_exchange). Bodies are JSON with a ``hostname`` header (celery/events/dispatcher.py).
A subscriber binds its own exclusive, auto-deleted queue ``celeryev.<uuid>`` with
Celery's TTLs (5 s per message, 60 s for an unused queue), as Celery's Receiver does.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections import deque
from collections.abc import Iterator
from contextlib import nullcontext
from typing import TYPE_CHECKING, Any

import kombu.entity
import kombu.messaging

from taskq.events.event import routing_key
from taskq.sidechannel import kombu_connection

if TYPE_CHECKING:
    from taskq.config import Settings

# kombu is only partly annotated (mypy --strict rejects its untyped calls): its objects are Any here.
Consumer: Any = kombu.messaging.Consumer
Producer: Any = kombu.messaging.Producer
Exchange: Any = kombu.entity.Exchange
Queue: Any = kombu.entity.Queue

log = logging.getLogger("taskq.events")
EXCHANGE = "celeryev"
WARN_EVERY = 30.0  # seconds between two "events are being dropped" lines
GROUP_MAX = 24  # task-* events in one message: Celery's buffer_limit


def grouped(events: list[dict[str, Any]]) -> Iterator[tuple[Any, str, str]]:
    """(body, routing key, hostname) per message: a run of task-* events from one host goes
    as lists of up to GROUP_MAX under ``task.multi`` (celery/events/dispatcher.py flush();
    Celery's Receiver, Flower and KombuSubscription read a list body as its events one by
    one); any other event alone, under its own routing key."""
    run: list[dict[str, Any]] = []
    for event in events:
        if run and (len(run) >= GROUP_MAX or event["hostname"] != run[0]["hostname"]):
            yield from _flush_run(run)
            run = []
        if event["type"].startswith("task-"):
            run.append(event)
            continue
        yield from _flush_run(run)
        run = []
        yield event, routing_key(event["type"]), event["hostname"]
    yield from _flush_run(run)


def _flush_run(run: list[dict[str, Any]]) -> Iterator[tuple[Any, str, str]]:
    if len(run) == 1:
        yield run[0], routing_key(run[0]["type"]), run[0]["hostname"]
    elif run:
        yield list(run), "task.multi", run[0]["hostname"]


def event_exchange(conn: Any) -> Any:
    fanout = conn.transport.driver_type in ("redis", "gcpubsub")
    return Exchange(EXCHANGE, type="fanout" if fanout else "topic")


class KombuEventBus:
    def __init__(self, conf: Settings) -> None:
        self.conf = conf
        self._conn: Any = None
        self._producer: Any = None
        self._lock = threading.Lock()  # consumer threads share one producer
        self._warned = 0.0

    def _producer_for(self) -> Any:
        if self._producer is None:
            self._conn = kombu_connection(self.conf)
            self._exchange = event_exchange(self._conn)
            self._producer = Producer(self._conn.channel(), serializer="json")
        return self._producer

    def publish(self, event: dict[str, Any]) -> None:
        self.publish_many([event])

    def publish_many(self, events: list[dict[str, Any]]) -> None:
        """Publish ``events`` in order, task-* events in groups as Celery's worker does (one
        message, a list body, routing key ``task.multi``); on Redis every message of the lot
        in one pipelined round trip where kombu can batch (Producer.batch, kombu >= 5.7)."""
        with self._lock:
            try:
                producer = self._producer_for()
                batch = getattr(producer, "batch", None)
                messages = list(grouped(events))
                with batch(max_size=len(messages)) if batch is not None and len(messages) > 1 else nullcontext():
                    for body, key, hostname in messages:
                        producer.publish(
                            body, routing_key=key, exchange=EXCHANGE, declare=[self._exchange],
                            headers={"hostname": hostname}, delivery_mode=1, retry=False,
                        )
            except Exception as exc:  # a broker blip loses events, never a task
                self._reset()
                now = time.monotonic()
                if now - self._warned > WARN_EVERY:
                    self._warned = now
                    log.warning("Events are being dropped: %s", exc)

    def _reset(self) -> None:
        conn, self._conn, self._producer = self._conn, None, None
        if conn is not None:
            try:
                conn.release()
            except Exception:
                log.debug("closing the events connection failed", exc_info=True)

    def subscribe(self) -> KombuSubscription:
        return KombuSubscription(self.conf)

    def close(self) -> None:
        with self._lock:
            self._reset()


class KombuSubscription:
    def __init__(self, conf: Settings) -> None:
        self._conn = kombu_connection(conf)
        exchange = event_exchange(self._conn)
        queue = Queue(
            f"celeryev.{uuid.uuid4()}", exchange=exchange, routing_key="#", auto_delete=True, durable=False,
            exclusive=True, message_ttl=5.0, expires=60.0,
        )
        self._inbox: deque[dict[str, Any]] = deque()
        self._consumer = Consumer(
            self._conn.channel(), queues=[queue], accept=["json"], no_ack=True, callbacks=[self._on_message]
        )
        self._consumer.consume()

    def _on_message(self, body: Any, message: Any) -> None:
        # Celery sends one dict or a list of them (a buffered group).
        for event in body if isinstance(body, list) else [body]:
            if isinstance(event, dict) and isinstance(event.get("type"), str):
                self._inbox.append(event)

    def read(self, timeout: float) -> Iterator[dict[str, Any]]:
        deadline = time.monotonic() + timeout
        while not self._inbox:
            left = deadline - time.monotonic()
            if left <= 0:
                return
            try:
                self._conn.drain_events(timeout=left)
            except TimeoutError:
                return
        while self._inbox:
            yield self._inbox.popleft()

    def close(self) -> None:
        try:
            self._consumer.cancel()
        finally:
            self._conn.release()
