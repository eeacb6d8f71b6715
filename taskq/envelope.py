"""The envelope: what every broker carries, independent of how it stores it.

An envelope is a Celery protocol-v2 message as AMQP would carry it: application headers,
message properties and the encoded body. RabbitMQ maps the three onto its own frame;
brokers that store one blob per message (memory, sqlite, redis) use ``to_bytes``.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from taskq.errors import InvalidMessage

JSON = "application/json"
MAX_PRIORITY = 255  # an AMQP octet
# One C encoder, reused: envelopes hold only JSON-native values and are never circular.
_ENCODE = json.JSONEncoder(separators=(",", ":"), check_circular=False).encode


@dataclass(slots=True)
class Envelope:
    headers: dict[str, Any]
    body: bytes
    content_type: str = JSON
    content_encoding: str = "utf-8"
    properties: dict[str, Any] = field(default_factory=dict)
    # to_bytes() output, once made; an envelope is never changed after it is built.
    encoded: bytes | None = field(default=None, repr=False, compare=False)
    # Set by message.build for a plain call: makes to_bytes() output from the task's template
    # (None when the template does not fit). Called on first use only: a broker that stores
    # its own form (Redis) never escapes a big body twice.
    plain: Callable[[], bytes | None] | None = field(default=None, repr=False, compare=False)

    @property
    def id(self) -> str:
        """The 'id' header; "" when it is missing or not a string (``parse`` rejects those).
        Never str() of a foreign value: a deeply nested one would raise RecursionError."""
        value = self.headers.get("id")
        return value if isinstance(value, str) else ""

    @property
    def priority(self) -> int:
        """The priority for routing, clamped to AMQP's 0-255; 0 when the property is not an
        integer ("high", [1], 1e400: ``parse`` rejects those, brokers must not crash on them)."""
        value = self.properties.get("priority")
        if not isinstance(value, int) or isinstance(value, bool):
            return 0
        return value if 0 <= value <= MAX_PRIORITY else min(max(value, 0), MAX_PRIORITY)

    def to_bytes(self) -> bytes:
        """One JSON document; a UTF-8 body is kept as text (cheap), any other as base64."""
        if self.encoded is not None:
            return self.encoded
        if self.plain is not None:
            self.encoded = self.plain()
            if self.encoded is not None:
                return self.encoded
        if self.content_encoding == "utf-8":
            try:
                body, body_encoding = self.body.decode("utf-8"), "utf-8"
            except UnicodeDecodeError:
                body, body_encoding = base64.b64encode(self.body).decode(), "base64"
        else:
            body, body_encoding = base64.b64encode(self.body).decode(), "base64"
        return _ENCODE(
            {
                "headers": self.headers,
                "properties": self.properties,
                "content-type": self.content_type,
                "content-encoding": self.content_encoding,
                "body_encoding": body_encoding,
                "body": body,
            },
        ).encode()

    @classmethod
    def from_bytes(cls, raw: bytes) -> Envelope:
        """Parse ``to_bytes`` output; anything else raises InvalidMessage with the reason."""
        try:
            doc = json.loads(raw)
        except (ValueError, RecursionError) as exc:  # RecursionError: nested deeper than the stack
            raise InvalidMessage(f"envelope is not JSON: {type(exc).__name__}: {exc}") from None
        if not isinstance(doc, dict):
            raise InvalidMessage("envelope is not a JSON object")
        headers, properties, body = doc.get("headers"), doc.get("properties", {}), doc.get("body")
        if not isinstance(headers, dict) or not isinstance(properties, dict):
            raise InvalidMessage("envelope headers/properties are not objects")
        if not isinstance(body, str):
            raise InvalidMessage("envelope body is not a string")
        content_type, content_encoding = doc.get("content-type", JSON), doc.get("content-encoding", "utf-8")
        if not isinstance(content_type, str) or not isinstance(content_encoding, str):
            raise InvalidMessage("envelope content-type/content-encoding are not strings")
        if doc.get("body_encoding") == "base64":
            try:
                data = base64.b64decode(body, validate=True)
            except ValueError:
                raise InvalidMessage("envelope body is not valid base64") from None
        else:
            try:
                data = body.encode("utf-8")
            except UnicodeEncodeError:  # a lone surrogate (a JSON \\ud800 escape)
                raise InvalidMessage("envelope body is not valid UTF-8 text") from None
        return cls(
            headers=headers,
            body=data,
            content_type=content_type,
            content_encoding=content_encoding,
            properties=properties,
        )
