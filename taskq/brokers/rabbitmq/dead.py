"""The dead-letter store on RabbitMQ: ``<queue>.dead``, read with basic.get.

Dead letters are listed by taking them (unacked) and returning them in order; requeueing
publishes the chosen ones (confirmed) to their queue and acks them, and returns the rest.
A dead letter carries its reason, time and origin queue in x-taskq-* headers; one a quorum
queue's delivery-limit dead-lettered carries RabbitMQ's x-death headers instead. Headers
may hold what JSON has no type for (AMQP byte arrays and timestamps, e.g. the raw table of
an undecodable message): ``DeadLetter.raw`` shows them as text.
"""

from __future__ import annotations

import base64
import datetime
import time
import uuid
from typing import Any

import pika

from taskq.brokers.base import DeadLetter
from taskq.brokers.rabbitmq.link import ChannelClosed, Link
from taskq.brokers.rabbitmq.wire import FAILED_AT_HEADER, ORIGIN_HEADER, REASON_HEADER, from_amqp
from taskq.envelope import Envelope

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
        raw=Envelope(
            json_safe(envelope.headers), envelope.body, envelope.content_type, envelope.content_encoding,
            json_safe(envelope.properties),
        ).to_bytes(),
    )


def json_safe(value: Any) -> Any:
    """AMQP values as JSON can carry them: bytes as UTF-8 text (else base64), timestamps as ISO
    8601. Depth is bounded: deeper headers never get past decode.py."""
    if isinstance(value, dict):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    if isinstance(value, (bytes, bytearray)):
        try:
            return bytes(value).decode("utf-8")
        except UnicodeDecodeError:
            return "base64:" + base64.b64encode(value).decode()
    if isinstance(value, datetime.datetime):
        return value.isoformat()
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    return str(value)
