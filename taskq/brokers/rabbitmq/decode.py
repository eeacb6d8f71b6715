"""Incoming frames pika cannot decode become deliveries the worker dead-letters.

pika decodes a message's headers table recursively, two Python frames per nesting level.
A header nested a few thousand tables deep (it fits easily in one 128 KiB frame) raises
RecursionError inside pika's frame decoding on the I/O thread: the connection aborts,
RabbitMQ requeues the message, the next worker takes it and dies the same way, and every
message behind it waits forever. A malformed table (an unknown field type, a truncated
value) does the same with another exception.

``GuardedConnection`` reads frames through ``read_frame``: a content header frame whose
properties cannot be decoded, or whose headers nest deeper than ``MAX_HEADER_DEPTH``
(decodable, but taskq's own recursive code would then fail on it further on), is replaced
by one with the same channel, body size and other properties, and headers that say why
(``UNDECODABLE_HEADER``) and keep the raw table (``RAW_HEADERS_HEADER``, when small). The
channel then delivers the message as usual with its delivery tag; the broker hands it to
the worker as undecodable, and the worker dead-letters it and goes on.

The depth check runs on the I/O thread's stack, which is shallow and never runs tasks, so
the headers pika could decode are always within the recursion limit there.
"""

from __future__ import annotations

import struct
from typing import Any

import pika
import pika.frame
import pika.spec

UNDECODABLE_HEADER = "x-taskq-undecodable"  # why the message's own headers were dropped
RAW_HEADERS_HEADER = "x-taskq-raw-headers"  # the headers table as it came, when small enough
MAX_HEADER_DEPTH = 64  # Celery's headers nest 3 deep; user headers get plenty of room
RAW_KEEP_LIMIT = 64 * 1024  # a dead letter's header frame must still fit the frame size
_HEADROOM = 4096  # for the headers the dead letter adds (reason, time, queue)
_FRAME_HEADER = struct.Struct(">BHL")  # type, channel, size
_CONTENT_HEADER = struct.Struct(">HHQ")  # class, weight, body size
_HEADERS_FLAG = pika.spec.BasicProperties.FLAG_HEADERS
_SHORTSTRS_BEFORE_HEADERS = (
    pika.spec.BasicProperties.FLAG_CONTENT_TYPE,
    pika.spec.BasicProperties.FLAG_CONTENT_ENCODING,
)
_CONTAINERS = (dict, list)  # what pika decodes tables and arrays to
Decoded = tuple[int, pika.frame.Frame | pika.frame.ProtocolHeader | None]


class GuardedConnection(pika.SelectConnection):  # type: ignore[misc]  # pika is untyped here
    """pika's SelectConnection, reading frames through ``read_frame``."""

    def _read_frame(self) -> Decoded:
        # params.frame_max is the negotiated frame size once the connection is tuned.
        return read_frame(self._frame_buffer, min(RAW_KEEP_LIMIT, self.params.frame_max - _HEADROOM))


def read_frame(buffer: bytes, raw_limit: int = RAW_KEEP_LIMIT) -> Decoded:
    """pika's decode_frame, except that an undecodable or too deep content header frame
    comes back as a stand-in frame (see the module docstring)."""
    try:
        consumed, frame = pika.frame.decode_frame(buffer)
    except Exception as exc:  # RecursionError, struct.error, InvalidFieldTypeException, ...
        stand_in = _stand_in(buffer, f"its AMQP headers cannot be decoded ({type(exc).__name__})", raw_limit)
        if stand_in is None:
            raise  # not a content header frame: the stream itself is broken
        return stand_in
    if isinstance(frame, pika.frame.Header) and nests_deeper(frame.properties.headers, MAX_HEADER_DEPTH):
        stand_in = _stand_in(buffer, f"its AMQP headers nest deeper than {MAX_HEADER_DEPTH} levels", raw_limit)
        if stand_in is not None:
            return stand_in
    return consumed, frame


def nests_deeper(value: Any, limit: int) -> bool:
    """Whether tables and arrays nest more than ``limit`` levels (iterative: no recursion)."""
    if type(value) not in _CONTAINERS:
        return False
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:  # on the I/O thread for every message: plain loops, exact type checks
        item, depth = stack.pop()
        if depth > limit:
            return True
        for child in item.values() if type(item) is dict else item:
            if type(child) in _CONTAINERS:
                stack.append((child, depth + 1))
    return False


def undecodable_reason(properties: pika.BasicProperties) -> str | None:
    """The reason a stand-in header gives, or None for a message decoded as sent."""
    headers = properties.headers
    reason = headers.get(UNDECODABLE_HEADER) if isinstance(headers, dict) else None
    if reason is None:
        return None
    return reason.decode("utf-8", "replace") if isinstance(reason, bytes) else str(reason)


def _stand_in(buffer: bytes, reason: str, raw_limit: int) -> Decoded | None:
    """The frame at the start of ``buffer`` as a content header without its own headers;
    None when it is not a complete content header frame."""
    try:
        frame_type, channel, size = _FRAME_HEADER.unpack_from(buffer, 0)
        end = _FRAME_HEADER.size + size + 1
        if frame_type != pika.spec.FRAME_HEADER or len(buffer) < end:
            return None
        _class_id, _weight, body_size = _CONTENT_HEADER.unpack_from(buffer, _FRAME_HEADER.size)
    except struct.error:
        return None
    encoded = buffer[_FRAME_HEADER.size + _CONTENT_HEADER.size : end - 1]
    properties, raw = _without_headers(encoded)
    headers: dict[str, Any] = {UNDECODABLE_HEADER: reason}
    if raw is not None and len(raw) <= raw_limit:
        headers[RAW_HEADERS_HEADER] = raw
    properties.headers = headers
    return end, pika.frame.Header(channel, body_size, properties)


def _without_headers(encoded: bytes) -> tuple[pika.BasicProperties, bytes | None]:
    """The other properties decoded (the headers table is skipped by its length, never
    parsed), and that table's raw bytes; empty properties when even that fails."""
    properties = pika.BasicProperties()
    try:
        (flags,) = struct.unpack_from(">H", encoded, 0)
        if flags & 1 or not flags & _HEADERS_FLAG:  # more flag words: not basic properties
            return properties, None
        offset = 2
        for flag in _SHORTSTRS_BEFORE_HEADERS:
            if flags & flag:
                offset += 1 + encoded[offset]
        (size,) = struct.unpack_from(">I", encoded, offset)
        end = offset + 4 + size
        if end > len(encoded):
            return properties, None
        rest = struct.pack(">H", flags & ~_HEADERS_FLAG) + encoded[2:offset] + encoded[end:]
        properties.decode(rest)
        return properties, bytes(encoded[offset + 4 : end])
    except Exception:  # anything else malformed: the message keeps its body only
        return pika.BasicProperties(), None
