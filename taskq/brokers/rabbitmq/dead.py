"""The dead-letter store on RabbitMQ: ``<queue>.dead``, read with basic.get.

Dead letters are listed by taking them (unacked) and returning them in order; requeueing
publishes the chosen ones (confirmed) to their queue and acks them, and returns the rest.
A dead letter carries its reason, time and origin queue in x-taskq-* headers; one a quorum
queue's delivery-limit dead-lettered carries RabbitMQ's x-death headers instead.
"""

from __future__ import annotations

import time
import uuid

import pika

from taskq.brokers.base import DeadLetter
from taskq.brokers.rabbitmq.link import ChannelClosed, Link
from taskq.brokers.rabbitmq.wire import FAILED_AT_HEADER, ORIGIN_HEADER, REASON_HEADER, from_amqp

Swept = tuple[int, pika.BasicProperties, bytes]  # delivery tag on the sweeper channel, properties, body


def sweep(link: Link, name: str, limit: int | None) -> list[Swept]:
    """basic.get up to ``limit`` messages (unacked) from a queue; [] when it does not exist."""
    taken: list[Swept] = []
    while limit is None or len(taken) < limit:
        try:
            got = link.get(name)
        except ChannelClosed as exc:
            if exc.reply_code == 404:
                break
            raise
        if got is None:
            break
        taken.append(got)
    return taken


def dead_letter_of(queue: str, properties: pika.BasicProperties, body: bytes) -> DeadLetter:
    envelope, added = from_amqp(properties, body)
    headers = properties.headers or {}
    reason = added.get(REASON_HEADER) or headers.get("x-first-death-reason") or "unknown"
    failed_at = added.get(FAILED_AT_HEADER)
    return DeadLetter(
        id=envelope.id or str(envelope.properties.get("correlation_id") or uuid.uuid4()),
        queue=str(added.get(ORIGIN_HEADER) or queue),
        reason=str(reason),
        failed_at=failed_at / 1000 if isinstance(failed_at, int) else time.time(),
        raw=envelope.to_bytes(),
    )
