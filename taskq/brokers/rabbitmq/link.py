"""One AMQP connection served by its own I/O thread (pika's SelectConnection).

pika connections are not thread-safe. Every frame of a Link is read and written by the
Link's I/O thread; other threads hand it work with ``add_callback_threadsafe`` and wait on
a Future. Because that thread never runs a task, heartbeats are answered while a task
runs for hours in another thread, and acks may come from any thread.

Four channels: ``publisher`` (confirm mode, many publishes in flight, each settled by
the broker's ack/nack, unroutable ones by basic.return), ``admin`` (declare, purge,
delete; RabbitMQ closes it on a 404/406, so it is reopened on demand), ``sweeper``
(basic.get on dead-letter queues, kept apart so an admin 404 never drops its messages) and
``consumer`` (basic.consume with manual acks).
"""

from __future__ import annotations

import logging
import ssl
import threading
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeout
from typing import Any, TypeVar

import pika
import pika.channel
import pika.exceptions
import pika.frame
import pika.spec
from pika.adapters.utils.connection_workflow import (
    AMQPConnectionWorkflowFailed,
    AMQPConnectorAMQPHandshakeError,
    AMQPConnectorPhaseErrorBase,
    AMQPConnectorSocketConnectError,
    AMQPConnectorTransportSetupError,
)

from taskq.brokers.rabbitmq.confirms import Confirms, ConfirmTracker, Outgoing, Unencodable
from taskq.brokers.rabbitmq.decode import GuardedConnection
from taskq.brokers.rabbitmq.frames import publish_frames
from taskq.brokers.rabbitmq.ops import LinkOperations, Slot, settle, settle_error
from taskq.brokers.rabbitmq.wire import amqp_value
from taskq.errors import BrokerError, PublishError

log = logging.getLogger("taskq.brokers.rabbitmq")


class _QuietProbes(logging.Filter):
    """pika warns on every Channel.Close. taskq asks "does this queue exist, with which
    arguments?" by declaring, and RabbitMQ answers no by closing the channel (404 no queue,
    406 inequivalent arg): an expected answer that taskq handles and logs itself."""

    def filter(self, record: logging.LogRecord) -> bool:
        text = record.getMessage()
        expected = '(404): "NOT_FOUND - no queue' in text or '(406): "PRECONDITION_FAILED - inequivalent arg' in text
        return not ("Received remote Channel.Close" in text and expected)


logging.getLogger("pika.channel").addFilter(_QuietProbes())
T = TypeVar("T")
_POLL_INTERVAL = 0.001  # while work keeps coming, the I/O thread looks for it this often


class ChannelClosed(BrokerError):
    """RabbitMQ closed a channel (404 NOT_FOUND, 406 PRECONDITION_FAILED, ...)."""

    def __init__(self, reply_code: int, reply_text: str) -> None:
        super().__init__(f"RabbitMQ closed the channel: {reply_code} {reply_text}")
        self.reply_code = reply_code


class Link(LinkOperations):
    def __init__(self, params: pika.ConnectionParameters, timeout: float = 10.0) -> None:
        self.timeout = timeout
        self.closed_reason: str | None = None
        self._opened: Future[None] = Future()
        self._slots = {role: Slot() for role in ("publisher", "admin", "consumer", "sweeper")}
        self._tracker = ConfirmTracker()
        self._retiring: set[pika.channel.Channel] = set()  # closed by renew_channel, not yet gone
        self._get_waiter: Future[Any] | None = None
        self._futures: set[Future[Any]] = set()
        self._work: deque[Callable[[], None]] = deque()  # for the I/O thread, in order
        self._wake_lock = threading.Lock()
        self._admin_lock = threading.Lock()
        self._woken = False
        self._polling = False  # the I/O thread looks for work every _POLL_INTERVAL by itself
        # Set by the consumer side; called on the I/O thread.
        self.on_consumer_lost: Callable[[str], None] = lambda reason: None
        self.on_consumer_cancelled: Callable[[str], None] = lambda consumer_tag: None
        self._conn = GuardedConnection(  # undecodable headers: dead-lettered, not fatal
            params,
            on_open_callback=lambda _c: self._opened.set_result(None),
            on_open_error_callback=self._on_open_error,
            on_close_callback=self._on_connection_closed,
        )
        self._thread = threading.Thread(target=self._conn.ioloop.start, name="taskq-amqp-io", daemon=True)
        self._thread.start()
        try:
            self._opened.result(timeout)
        except FutureTimeout:
            self._abandon()
            raise BrokerError(f"RabbitMQ did not answer within {timeout}s") from None
        except BrokerError:
            self._thread.join(timeout)
            raise

    @property
    def alive(self) -> bool:
        return self.closed_reason is None

    # -- running work on the I/O thread ----------------------------------------------------
    def run(self, op: Callable[[Future[T]], None], timeout: float | None = None) -> T:
        """Run ``op(future)`` on the I/O thread and wait for it to settle the future."""
        future: Future[T] = Future()
        self.post(lambda: self._start(op, future))
        try:
            return future.result(self.timeout if timeout is None else timeout)
        except FutureTimeout:
            raise BrokerError(f"RabbitMQ did not answer within {self.timeout}s") from None

    def post(self, fn: Callable[[], None], urgent: bool = True) -> None:
        """Queue ``fn`` for the I/O thread, in order.

        Waking the I/O thread costs a socket write, which at thousands of messages a second
        is most of a publish. So a burst shares one wake-up, and while work keeps coming the
        I/O thread looks for it every millisecond by itself: work nobody waits for (acks,
        unconfirmed publishes: ``urgent=False``) then needs no wake-up at all.
        """
        if not self.alive:
            raise BrokerError(f"connection to RabbitMQ lost: {self.closed_reason}")
        with self._wake_lock:
            self._work.append(fn)
            if self._woken or (self._polling and not urgent):
                return
            self._woken = True
        try:
            self._conn.ioloop.add_callback_threadsafe(self._run_work)
        except Exception as exc:  # the ioloop is closed: the connection just died
            raise BrokerError(f"connection to RabbitMQ lost: {exc}") from None

    def _run_work(self) -> None:
        """On the I/O thread: run what is queued; keep looking while work keeps coming."""
        with self._wake_lock:
            self._woken = False  # before draining: urgent work queued from now on wakes us
        work, ran = self._work, 0
        while work:
            work.popleft()()
            ran += 1
        if ran and not self._polling and self.alive:
            self._polling = True
            self._conn.ioloop.call_later(_POLL_INTERVAL, self._poll_work)

    def _poll_work(self) -> None:
        with self._wake_lock:
            if not self._work or not self.alive:
                self._polling = False  # quiet again: the next post wakes us
                return
        work = self._work
        while work:
            work.popleft()()
        self._conn.ioloop.call_later(_POLL_INTERVAL, self._poll_work)

    def _start(self, op: Callable[[Future[T]], None], future: Future[T]) -> None:
        if not self.alive:
            future.set_exception(BrokerError(f"connection to RabbitMQ lost: {self.closed_reason}"))
            return
        self._futures.add(future)
        future.add_done_callback(self._futures.discard)
        try:
            op(future)
        except pika.exceptions.AMQPError as exc:
            settle_error(future, BrokerError(f"RabbitMQ error: {exc!r}"))
        except Exception as exc:
            settle_error(future, exc)

    def with_channel(self, role: str, future: Future[Any], then: Callable[[pika.channel.Channel], None]) -> None:
        """On the I/O thread: run ``then(channel)`` once the channel of that role is open.

        ``future`` fails if the channel closes before it settles.
        """
        slot = self._slots[role]
        slot.futures.add(future)
        future.add_done_callback(slot.futures.discard)
        if slot.channel is not None and slot.channel.is_open:
            then(slot.channel)
            return
        slot.waiting.append((future, then))
        if not slot.opening:
            slot.opening = True
            self._conn.channel(on_open_callback=lambda ch: self._on_channel_open(role, ch))

    def _on_channel_open(self, role: str, channel: pika.channel.Channel) -> None:
        channel.add_on_close_callback(lambda ch, reason: self._on_channel_closed(role, ch, reason))
        if role == "publisher":
            self._tracker.reset()
            channel.add_on_return_callback(self._tracker.on_return)
            channel.confirm_delivery(
                lambda frame: self._on_confirm(channel, frame), callback=lambda _f: self._channel_ready(role, channel)
            )
        elif role == "sweeper":
            channel.add_callback(self._on_get_empty, [pika.spec.Basic.GetEmpty], one_shot=False)
            self._channel_ready(role, channel)
        elif role == "consumer":
            channel.add_on_cancel_callback(lambda frame: self.on_consumer_cancelled(frame.method.consumer_tag))
            self._channel_ready(role, channel)
        else:
            self._channel_ready(role, channel)

    def _on_confirm(self, channel: pika.channel.Channel, frame: pika.frame.Method) -> None:
        if channel is self._slots["publisher"].channel:  # a retired channel's numbers are not ours
            self._tracker.on_confirm(frame)

    def _channel_ready(self, role: str, channel: pika.channel.Channel) -> None:
        slot = self._slots[role]
        slot.channel, slot.opening = channel, False
        waiting, slot.waiting = slot.waiting, []
        for future, then in waiting:
            try:
                then(channel)
            except Exception as exc:  # settle the caller's future, not pika's callback
                settle_error(future, BrokerError(f"RabbitMQ error: {exc!r}"))

    def _on_channel_closed(self, role: str, channel: pika.channel.Channel, reason: Exception) -> None:
        if channel in self._retiring:
            self._retiring.discard(channel)
            return
        slot = self._slots[role]
        if slot.channel is not channel and slot.channel is not None:
            return
        slot.channel, slot.opening, slot.waiting = None, False, []
        code = getattr(reason, "reply_code", 0)
        text = getattr(reason, "reply_text", str(reason))
        error = ChannelClosed(code, text)
        for future in list(slot.futures):
            settle_error(future, error)
        if role == "publisher":
            self._tracker.fail_all(PublishError(f"publish not confirmed: channel closed ({code} {text})"))
        if role == "sweeper" and self._get_waiter is not None:
            settle_error(self._get_waiter, error)
            self._get_waiter = None
        if role == "consumer":
            self.on_consumer_lost(f"consumer channel closed: {code} {text}")
        if isinstance(reason, pika.exceptions.ChannelClosedByBroker) and code not in (404, 406):
            log.warning("RabbitMQ closed the %s channel: %s %s", role, code, text)

    # -- publishing with confirms -----------------------------------------------------------
    def publish(self, items: list[Outgoing], wait: bool = True) -> Confirms | None:
        """Send all items (from any thread); the confirms settle as RabbitMQ answers.

        The frames are encoded here, in the caller's thread, so a header that cannot be
        encoded raises at once and nothing is half sent. With ``wait`` False (unconfirmed
        publishing) this returns without waiting for the I/O thread to take the frames, and
        nothing tracks the confirms (None).
        """
        channel = self._slots["publisher"].channel
        number = channel.channel_number if channel is not None and channel.is_open else None
        data = self._encode(number, items) if number is not None else None
        confirms = Confirms(len(items)) if wait else None
        sent: Future[None] = Future()

        def send(channel: pika.channel.Channel) -> None:
            try:
                self._send_now(channel, items, confirms, data if channel.channel_number == number else None)
            except Exception as exc:
                settle_error(sent, exc if isinstance(exc, PublishError) else PublishError(f"publish failed: {exc!r}"))
                if not wait:
                    log.error("Unconfirmed publish failed: %r", exc)
            else:
                settle(sent, None)

        def start() -> None:
            if not self.alive:
                sent.set_exception(BrokerError(f"connection to RabbitMQ lost: {self.closed_reason}"))
                return
            try:
                self.with_channel("publisher", sent, send)
            except Exception as exc:
                settle_error(sent, PublishError(f"publish failed: {exc!r}"))

        try:
            self.post(start, urgent=wait)
            if wait:
                sent.result(self.timeout)
        except FutureTimeout:
            raise PublishError(f"RabbitMQ did not take the messages within {self.timeout}s") from None
        except PublishError:
            raise
        except BrokerError as exc:
            raise PublishError(str(exc)) from None
        return confirms

    def _encode(self, number: int, items: list[Outgoing]) -> bytes | None:
        body_max = getattr(self._conn, "_body_max_length", None)
        if not body_max or not hasattr(self._conn, "_output_marshaled_frames"):
            return None  # pika changed: its own (slower) path encodes
        try:
            return b"".join(publish_frames(number, body_max, *item) for item in items)
        except (TypeError, ValueError) as exc:
            raise Unencodable(f"message cannot be encoded: {exc}") from None

    def renew_channel(self, role: str) -> None:
        """Close the channel of ``role`` (from any thread): the next use opens a new one. What
        it had in flight fails as for any closed channel, and is retried by its caller."""

        def close() -> None:
            slot = self._slots[role]
            channel = slot.channel
            if channel is None or not channel.is_open:
                return
            slot.channel = None  # retired: its late confirms and its close concern nobody now
            self._retiring.add(channel)
            if role == "publisher":
                self._tracker.fail_all(PublishError("publish not confirmed: the channel was renewed"))
            channel.close()

        self.post(close)

    def _send_now(
        self, channel: pika.channel.Channel, items: list[Outgoing], confirms: Confirms | None, data: bytes | None
    ) -> None:
        """On the I/O thread: register every message for its confirm, then write them at once."""
        if not channel.is_open:
            raise BrokerError("the publisher channel closed")
        if data is None:
            data = self._encode(channel.channel_number, items)
        if data is None:
            self._tracker.register(confirms, items)
            for exchange, routing_key, body, properties in items:
                properties.headers = amqp_value(properties.headers) if properties.headers else properties.headers
                channel.basic_publish(exchange, routing_key, body, properties, mandatory=True)
            return
        self._tracker.register(confirms, items)
        self._conn._output_marshaled_frames([data])

    # -- lifecycle ---------------------------------------------------------------------------
    def _on_open_error(self, _conn: Any, error: BaseException | str) -> None:
        self.closed_reason = open_error_reason(error)
        self._conn.ioloop.stop()
        if not self._opened.done():
            self._opened.set_exception(BrokerError(f"cannot connect to RabbitMQ: {self.closed_reason}"))

    def _on_connection_closed(self, _conn: Any, reason: Exception) -> None:
        self.closed_reason = str(reason) or type(reason).__name__
        error = BrokerError(f"connection to RabbitMQ lost: {self.closed_reason}")
        self._tracker.fail_all(PublishError(f"publish not confirmed: {error}"))
        for slot in self._slots.values():
            slot.channel, slot.opening, slot.waiting = None, False, []
        self._retiring.clear()
        for future in list(self._futures):
            settle_error(future, error)
        if self._get_waiter is not None:
            settle_error(self._get_waiter, error)
        self.on_consumer_lost(self.closed_reason)
        self._run_work()  # queued work sees the link dead and fails its waiters now
        self._conn.ioloop.stop()

    def close(self) -> None:
        """Close gracefully (pending acks are written first); waits for the I/O thread."""
        if self.alive:

            def shut() -> None:
                if self._conn.is_open:
                    self._conn.close()

            try:
                self.post(shut)
            except BrokerError:
                pass
        if threading.current_thread() is not self._thread:
            self._thread.join(self.timeout)

    def _abandon(self) -> None:
        self.closed_reason = self.closed_reason or "abandoned"
        try:
            self._conn.ioloop.add_callback_threadsafe(self._conn.ioloop.stop)
        except Exception:
            pass


def open_error_reason(error: BaseException | str) -> str:
    """One line saying why a connection did not open.

    pika wraps the cause up to three deep (connection error -> workflow failed -> the phase
    that failed -> the socket, TLS or AMQP error), and the wrappers' str() is empty: without
    this a refused certificate reads "AMQPConnectionWorkflowFailed".
    """
    if isinstance(error, str):
        return error or "unknown error"
    cause, phase = error, ""
    while True:
        if isinstance(cause, AMQPConnectionWorkflowFailed) and cause.exceptions:
            cause = cause.exceptions[-1]
        elif isinstance(cause, AMQPConnectorPhaseErrorBase):
            phase = phase or _PHASES.get(type(cause), "")
            cause = cause.exception
        elif type(cause) is pika.exceptions.AMQPConnectionError and isinstance(next(iter(cause.args), None), Exception):
            cause = cause.args[0]
        else:
            break
    if isinstance(cause, ssl.SSLError):
        phase = "TLS handshake failed"
    # pika's exceptions say what happened in their repr; the others (OSError, SSLError) in str.
    text = repr(cause) if isinstance(cause, pika.exceptions.AMQPError) else str(cause) or type(cause).__name__
    if isinstance(cause, pika.exceptions.IncompatibleProtocolError):
        text += " (is it an AMQP port? a TLS port needs amqps://)"
    text = " ".join(text.split())
    return f"{phase}: {text}" if phase else text


_PHASES = {
    AMQPConnectorSocketConnectError: "TCP connect failed",
    AMQPConnectorTransportSetupError: "transport setup failed",
    AMQPConnectorAMQPHandshakeError: "AMQP handshake failed",
}
