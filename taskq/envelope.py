"""The envelope: what every broker carries, independent of how it stores it.

An envelope is a Celery protocol-v2 message as AMQP would carry it: application headers,
message properties and the encoded body. RabbitMQ maps the three onto its own frame;
brokers that store one blob per message (memory, sqlite, redis) use ``to_bytes``.
"""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass, field
from typing import Any

from taskq.errors import InvalidMessage

JSON = "application/json"
# One C encoder, reused: envelopes hold only JSON-native values and are never circular.
_ENCODE = json.JSONEncoder(separators=(",", ":"), check_circular=False).encode


@dataclass(slots=True)
class Envelope:
    headers: dict[str, Any]
    body: bytes
    content_type: str = JSON
    content_encoding: str = "utf-8"
    properties: dict[str, Any] = field(default_factory=dict)
    # to_bytes() output made at build time from a template (message.build); an envelope is
    # never changed after it is built, so it stays true.
    encoded: bytes | None = field(default=None, repr=False, compare=False)

    @property
    def id(self) -> str:
        return str(self.headers.get("id", ""))

    @property
    def priority(self) -> int:
        return int(self.properties.get("priority") or 0)

    def to_bytes(self) -> bytes:
        """One JSON document; a UTF-8 body is kept as text (cheap), any other as base64."""
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
        except (ValueError, UnicodeDecodeError) as exc:
            raise InvalidMessage(f"envelope is not JSON: {exc}") from None
        if not isinstance(doc, dict):
            raise InvalidMessage("envelope is not a JSON object")
        headers, properties, body = doc.get("headers"), doc.get("properties", {}), doc.get("body")
        if not isinstance(headers, dict) or not isinstance(properties, dict):
            raise InvalidMessage("envelope headers/properties are not objects")
        if not isinstance(body, str):
            raise InvalidMessage("envelope body is not a string")
        if doc.get("body_encoding") == "base64":
            try:
                data = base64.b64decode(body, validate=True)
            except ValueError:
                raise InvalidMessage("envelope body is not valid base64") from None
        else:
            data = body.encode("utf-8")
        return cls(
            headers=headers,
            body=data,
            content_type=str(doc.get("content-type", JSON)),
            content_encoding=str(doc.get("content-encoding", "utf-8")),
            properties=properties,
        )
