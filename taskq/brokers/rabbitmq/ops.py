"""The Link's channel operations: admin (declare, purge, delete), sweeper (basic.get) and
consumer (consume, cancel, acks).

A mixin of Link (kept apart so each module stays small, as redis/admin.py is for Redis):
each operation runs on the Link's I/O thread through ``run`` or ``post`` on the channel of
its role (``with_channel``), and the caller waits on a Future where it needs the answer.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any, Protocol, TypeVar

import pika
import pika.channel
import pika.frame
import pika.spec

from taskq.errors import BrokerError

log = logging.getLogger("taskq.brokers.rabbitmq")
T = TypeVar("T")
Deliver = Callable[[pika.spec.Basic.Deliver, pika.spec.BasicProperties, bytes], None]


@dataclass
class Slot:
    """A channel by role; work waiting for it to open runs once it is open."""

    channel: pika.channel.Channel | None = None
    opening: bool = False
    waiting: list[tuple[Future[Any], Callable[[pika.channel.Channel], None]]] = field(default_factory=list)
    futures: set[Future[Any]] = field(default_factory=set)


class _Link(Protocol):
    """What these methods use of Link."""

    _slots: dict[str, Slot]
    _admin_lock: threading.Lock
    _get_waiter: Future[Any] | None
    _conn: Any

    def run(self, op: Callable[[Future[T]], None], timeout: float | None = None) -> T: ...
    def post(self, fn: Callable[[], None], urgent: bool = True) -> None: ...
    def with_channel(self, role: str, future: Future[Any], then: Callable[[pika.channel.Channel], None]) -> None: ...
    def _settle_on(self, role: str, acks: list[int], nacks: list[int]) -> None: ...


class LinkOperations:
    """Admin, sweeper and consumer operations of a Link (its base class)."""

    _get_waiter: Future[Any] | None  # the basic.get waiting for its answer (set by Link)

    def declare(self: _Link, queue: str, passive: bool, arguments: dict[str, Any] | None = None) -> tuple[int, int]:
        """(ready message count, consumer count); ChannelClosed 404/406 when it does not fit."""

        def op(future: Future[tuple[int, int]]) -> None:
            def go(ch: pika.channel.Channel) -> None:
                ch.queue_declare(
                    queue,
                    passive=passive,
                    durable=True,
                    arguments=arguments,
                    callback=lambda f: settle(future, (f.method.message_count, f.method.consumer_count)),
                )

            self.with_channel("admin", future, go)

        with self._admin_lock:  # a 404 closes the channel: it must fail this call only
            return self.run(op)

    def declare_exchange(self: _Link, name: str, kind: str, durable: bool, auto_delete: bool) -> None:
        """Declare an exchange as Celery (kombu) does; ChannelClosed 406 when it exists otherwise."""

        def op(future: Future[None]) -> None:
            def go(ch: pika.channel.Channel) -> None:
                ch.exchange_declare(
                    name, kind, durable=durable, auto_delete=auto_delete, callback=lambda _f: settle(future, None)
                )

            self.with_channel("admin", future, go)

        with self._admin_lock:
            self.run(op)

    def bind(self: _Link, queue: str, exchange: str, routing_key: str) -> None:
        def op(future: Future[None]) -> None:
            def go(ch: pika.channel.Channel) -> None:
                ch.queue_bind(queue, exchange, routing_key=routing_key, callback=lambda _f: settle(future, None))

            self.with_channel("admin", future, go)

        with self._admin_lock:
            self.run(op)

    def purge(self: _Link, queue: str) -> int:
        def op(future: Future[int]) -> None:
            self.with_channel(
                "admin",
                future,
                lambda ch: ch.queue_purge(queue, callback=lambda f: settle(future, f.method.message_count)),
            )

        with self._admin_lock:
            return self.run(op)

    def delete(self: _Link, queue: str) -> None:
        def op(future: Future[None]) -> None:
            self.with_channel(
                "admin", future, lambda ch: ch.queue_delete(queue, callback=lambda f: settle(future, None))
            )

        with self._admin_lock:
            self.run(op)

    def get(self: _Link, queue: str) -> tuple[int, pika.BasicProperties, bytes] | None:
        """basic.get on the sweeper channel (one caller at a time), manual ack: (tag, properties, body)."""

        def op(future: Future[tuple[int, pika.BasicProperties, bytes] | None]) -> None:
            def go(ch: pika.channel.Channel) -> None:
                self._get_waiter = future

                def got(_ch: Any, method: pika.spec.Basic.GetOk, props: pika.BasicProperties, body: bytes) -> None:
                    self._get_waiter = None
                    settle(future, (method.delivery_tag, props, body))

                ch.basic_get(queue, got)

            self.with_channel("sweeper", future, go)

        return self.run(op)

    def _on_get_empty(self: _Link, _frame: pika.frame.Method) -> None:
        waiter, self._get_waiter = self._get_waiter, None
        if waiter is not None:
            settle(waiter, None)

    def settle_swept(self: _Link, acks: list[int], nacks: list[int]) -> None:
        """Ack or return (requeue) messages taken with ``get``; waits until written."""
        self._settle_on("sweeper", acks, nacks)

    def settle_consumed(self: _Link, acks: list[int], nacks: list[int], acks_upto: int | None = None) -> None:
        """Ack or return consumed messages without waiting for the I/O thread to write them.

        Waiting would buy nothing: an ack that never reaches RabbitMQ (the channel closed
        first) means the message is delivered again, which is what a failed ack means anyway.
        Frames leave in order, so an ack is written before a later close of the connection.
        ``acks_upto``: one ack with multiple=True for every unacked tag up to it.
        """

        def write() -> None:
            channel = self._slots["consumer"].channel
            if channel is None or not channel.is_open:
                log.warning("Consumer channel closed before %d ack(s); those messages return", len(acks))
                return
            if acks_upto is not None:
                channel.basic_ack(acks_upto, multiple=True)
            for tag in acks:
                channel.basic_ack(tag)
            for tag in nacks:
                channel.basic_nack(tag, requeue=True)

        self.post(write, urgent=False)

    def _settle_on(self: _Link, role: str, acks: list[int], nacks: list[int]) -> None:
        if not acks and not nacks:
            return  # nothing taken: e.g. the sweep's basic.get met a missing queue (404 closes the channel)

        def op(future: Future[None]) -> None:
            channel = self._slots[role].channel
            if channel is None or not channel.is_open:
                raise BrokerError(f"the {role} channel closed; its deliveries return to their queues")
            for tag in acks:
                channel.basic_ack(tag)
            for tag in nacks:
                channel.basic_nack(tag, requeue=True)
            future.set_result(None)

        self.run(op)

    def nack_consumed_now(self: _Link, tags: list[int]) -> None:
        """On the I/O thread: return deliveries to their queue (RabbitMQ marks them redelivered)."""
        channel = self._slots["consumer"].channel
        if channel is not None and channel.is_open:
            for tag in tags:
                channel.basic_nack(tag, requeue=True)

    def consume(self: _Link, queue: str, prefetch: int, consumer_tag: str, deliver: Deliver) -> None:
        """Start a consumer with its own prefetch; returns once RabbitMQ confirmed it."""

        def op(future: Future[None]) -> None:
            def go(ch: pika.channel.Channel) -> None:
                def on_message(_c: Any, m: pika.spec.Basic.Deliver, p: pika.BasicProperties, b: bytes) -> None:
                    deliver(m, p, b)

                def consume(_qos: Any) -> None:
                    ch.basic_consume(
                        queue, on_message, consumer_tag=consumer_tag, callback=lambda _f: settle(future, None)
                    )

                # A non-global qos applies to consumers started after it: set it each time.
                ch.basic_qos(prefetch_count=prefetch, callback=consume)

            self.with_channel("consumer", future, go)

        self.run(op)

    def cancel(self: _Link, consumer_tag: str) -> None:
        def op(future: Future[None]) -> None:
            channel = self._slots["consumer"].channel
            if channel is None or not channel.is_open or consumer_tag not in channel.consumer_tags:
                future.set_result(None)
                return
            self._slots["consumer"].futures.add(future)
            channel.basic_cancel(consumer_tag, callback=lambda _f: settle(future, None))

        self.run(op)

    def sync_consumed(self: _Link) -> None:
        """Return once RabbitMQ has processed every ack and nack written before this on the
        consumer channel: a channel's frames are processed in order, so the answer to one
        synchronous method (a passive declare of the built-in ``amq.direct``, which changes
        nothing) comes after them. Raises BrokerError when the channel closed first."""

        def op(future: Future[None]) -> None:
            channel = self._slots["consumer"].channel
            if channel is None or not channel.is_open:
                raise BrokerError("the consumer channel closed; its deliveries return to their queues")
            self._slots["consumer"].futures.add(future)
            channel.exchange_declare("amq.direct", passive=True, callback=lambda _f: settle(future, None))

        self.run(op)

    def call_later(self: _Link, delay: float, fn: Callable[[], None]) -> None:
        """On the I/O thread: schedule ``fn`` there after ``delay`` seconds."""
        self._conn.ioloop.call_later(delay, fn)


def settle(future: Future[T], value: T) -> None:
    if not future.done():
        future.set_result(value)


def settle_error(future: Future[Any], error: BaseException) -> None:
    if not future.done():
        future.set_exception(error)
