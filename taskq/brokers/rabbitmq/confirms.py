"""Publisher confirms: which publish each basic.ack / basic.nack / basic.return settles.

A confirm-mode channel numbers its publishes 1, 2, 3...; RabbitMQ acks (or nacks) them,
often many at once (``multiple``). A mandatory message no queue takes comes back as a
basic.return just before its ack. Everything here runs on the Link's I/O thread, except
``Confirms.wait``, which the publishing thread calls.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

import pika
import pika.channel
import pika.frame
import pika.spec

from taskq.errors import BrokerError, PublishError

Outgoing = tuple[str, str, bytes, pika.BasicProperties]  # exchange, routing key, body, properties


class Refused(PublishError):
    """RabbitMQ nacked a publish (e.g. a full queue with x-overflow reject-publish)."""


class Unencodable(PublishError):
    """A message whose headers AMQP cannot carry: sending it again would not help."""


class Unroutable(PublishError):
    """RabbitMQ returned a mandatory message: no queue was bound to its routing key."""


class Confirms:
    """The confirms of one publish call: settled by the I/O thread, awaited by the caller."""

    def __init__(self, count: int) -> None:
        self.remaining = count
        self.errors: dict[int, BrokerError] = {}  # index -> why that message was not confirmed
        self._done = threading.Event()
        if count == 0:
            self._done.set()

    def settle(self, index: int, error: BrokerError | None) -> None:
        if error is not None:
            self.errors[index] = error
        self.remaining -= 1
        if self.remaining == 0:
            self._done.set()

    def wait(self, timeout: float) -> bool:
        return self._done.wait(timeout)


@dataclass(slots=True)
class _Pending:
    confirms: Confirms
    index: int
    routing_key: str
    body: bytes
    returned: str | None = None


class ConfirmTracker:
    def __init__(self) -> None:
        self._seq = 0
        self._unconfirmed: dict[int, _Pending] = {}  # in sequence order

    def reset(self) -> None:
        """A new confirm-mode channel numbers from 1 again."""
        self._seq = 0

    def register(self, confirms: Confirms | None, items: list[Outgoing]) -> None:
        """Number the messages about to be written, in the order they will be written.

        Unconfirmed publishes (``confirms`` None) only take their numbers: the channel is in
        confirm mode, so RabbitMQ acks them too, and those acks find nothing to settle.
        """
        if confirms is None:
            self._seq += len(items)
            return
        for index, (_exchange, routing_key, body, _properties) in enumerate(items):
            self._seq += 1
            self._unconfirmed[self._seq] = _Pending(confirms, index, routing_key, body)

    def on_confirm(self, frame: pika.frame.Method) -> None:
        method = frame.method
        refused = not isinstance(method, pika.spec.Basic.Ack)
        error = Refused("RabbitMQ refused the message (basic.nack)") if refused else None
        tag = method.delivery_tag
        if method.multiple:  # every sequence number up to tag, oldest first
            unconfirmed = self._unconfirmed
            while unconfirmed:
                seq = next(iter(unconfirmed))
                if seq > tag:
                    break
                _settle(unconfirmed.pop(seq), error)
        elif tag in self._unconfirmed:
            _settle(self._unconfirmed.pop(tag), error)

    def on_return(
        self, _ch: pika.channel.Channel, method: pika.spec.Basic.Return, _p: pika.BasicProperties, body: bytes
    ) -> None:
        # A return comes before the confirm of the same message; match it by content.
        for pending in self._unconfirmed.values():
            if pending.returned is None and pending.routing_key == method.routing_key and pending.body == body:
                pending.returned = f"no queue {method.routing_key!r}: {method.reply_code} {method.reply_text}"
                return

    def fail_all(self, error: BrokerError) -> None:
        """The channel or connection is gone: nothing pending will be confirmed."""
        pending, self._unconfirmed = self._unconfirmed, {}
        for item in pending.values():
            item.confirms.settle(item.index, error)


def _settle(pending: _Pending, error: BrokerError | None) -> None:
    if pending.returned is not None:
        error = Unroutable(pending.returned)
    pending.confirms.settle(pending.index, error)
