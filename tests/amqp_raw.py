"""Hand-built AMQP property bytes, for messages no well-behaved client would send.

pika (and taskq's own encoder) encode header tables recursively, so neither can send a
table nested thousands deep: these helpers build one iteratively, and ``RawProperties``
lets pika publish it as it is.
"""

from __future__ import annotations

import struct
from typing import Any

import pika
import pika.spec

from taskq.brokers.rabbitmq.frames import shortstr, table

_FLAGS = pika.spec.BasicProperties


def nested_table(depth: int) -> bytes:
    """An AMQP field table ``{"n": {"n": ... {} ...}}`` with ``depth`` tables below the top."""
    inner = struct.pack(">I", 0)
    for _ in range(depth):
        entry = shortstr("n") + b"F" + inner
        inner = struct.pack(">I", len(entry)) + entry
    return inner


def headers_with(headers: dict[str, Any], name: str, raw_table: bytes) -> bytes:
    """``headers`` encoded as a table, plus one more entry whose value is ``raw_table``."""
    body = table(headers)[4:] + shortstr(name) + b"F" + raw_table
    return struct.pack(">I", len(body)) + body


def properties_bytes(headers_table: bytes, correlation_id: str | None = None) -> bytes:
    """Basic properties: JSON content, those headers, persistent, and a correlation id."""
    flags = _FLAGS.FLAG_CONTENT_TYPE | _FLAGS.FLAG_CONTENT_ENCODING | _FLAGS.FLAG_HEADERS | _FLAGS.FLAG_DELIVERY_MODE
    tail = b""
    if correlation_id is not None:
        flags |= _FLAGS.FLAG_CORRELATION_ID
        tail = shortstr(correlation_id)
    parts = [struct.pack(">H", flags), shortstr("application/json"), shortstr("utf-8"), headers_table, b"\x02", tail]
    return b"".join(parts)


def header_frame(channel: int, body_size: int, properties: bytes) -> bytes:
    """One complete content header frame carrying these property bytes."""
    payload = struct.pack(">HHQ", 60, 0, body_size) + properties
    return struct.pack(">BHL", 2, channel, len(payload)) + payload + b"\xce"


class RawProperties(pika.BasicProperties):  # type: ignore[misc]
    """Properties pika publishes as the given bytes, without encoding anything itself."""

    def __init__(self, encoded: bytes) -> None:
        super().__init__()
        self._encoded = encoded

    def encode(self) -> list[bytes]:
        return [self._encoded]
