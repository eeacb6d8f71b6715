"""Message signing: an HMAC over everything the worker acts on, with a validity window.

The canonical form (version 1; docs/security.md) is the bytes

    b"taskq-hmac-v1" 0x00 JSON([queue, headers, priority, content_type, content_encoding]) 0x00 body

where ``headers`` is every application header except ``x-taskq-signature`` itself (the
protocol-v2 headers, the sender's custom headers and ``x-taskq-signed-at``), ``queue`` is
the queue the message was published to, and the JSON is compact with sorted keys and ASCII
escapes, integral floats written as integers, so producer and worker render the same bytes
whatever order or number type a broker returns headers in. A header, priority, content
type, queue or body changed on the way fails the HMAC; an exact copy passes it, which is
what the validity window and the worker's replay memory (``taskq.worker.replay``) are for.

``x-taskq-signed-at`` (ISO-8601, UTC) opens the window: a message is refused once
``signing_max_age`` has passed since it was signed, or since its ``eta`` when that is
later (a countdown longer than the window must still run). A timestamp further in the
future than the window is refused too (a wrong clock would otherwise stretch it).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import TYPE_CHECKING, Any

from taskq.envelope import Envelope
from taskq.errors import SignatureError

if TYPE_CHECKING:
    from taskq.config import Settings

SIGNATURE_HEADER = "x-taskq-signature"
SIGNED_AT_HEADER = "x-taskq-signed-at"
_VERSION = b"taskq-hmac-v1"


def canonical(queue: str, headers: dict[str, Any], priority: Any, content_type: str, content_encoding: str) -> bytes:
    """The signed document, without the body (see the module docstring)."""
    covered = {str(k): _plain(v) for k, v in headers.items() if k != SIGNATURE_HEADER}
    doc = [queue, covered, priority, content_type, content_encoding]
    return json.dumps(doc, sort_keys=True, separators=(",", ":"), ensure_ascii=True, default=str).encode()


_SCALARS = frozenset({str, int, bool})


def _plain(value: Any) -> Any:
    """A header value as every broker returns it: a float with an integral value is that
    integer (pika reads AMQP doubles back as integers, so 30.0 arrives as 30)."""
    if value is None or type(value) in _SCALARS:  # most headers: no isinstance chain
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


@dataclass(frozen=True)
class Signer:
    key: str = field(repr=False)  # never in a repr (a logged send plan, a traceback)
    max_age: float  # seconds: signing_max_age

    def _digest(self, queue: str, envelope: Envelope) -> str:
        # The priority property as sent, not Envelope.priority (which reads a non-integer as 0):
        # a forged "high" must not verify as the 0 that was signed.
        priority = _plain(envelope.properties.get("priority") or 0)
        doc = canonical(queue, envelope.headers, priority, envelope.content_type, envelope.content_encoding)
        data = _VERSION + b"\0" + doc + b"\0" + envelope.body
        # hashlib and hmac here, not at the top: loading OpenSSL's hashes is 3 ms of every
        # process's start, and only an app with signing_key signs (issue 22, startup).
        import hashlib
        import hmac

        return hmac.new(self.key.encode(), data, hashlib.sha256).hexdigest()

    def sign(self, queue: str, envelope: Envelope, now: datetime | None = None) -> None:
        """Stamp and sign an envelope built for ``queue`` (in place, before it is encoded)."""
        envelope.headers[SIGNED_AT_HEADER] = (now or datetime.now(timezone.utc)).isoformat()
        envelope.headers.pop(SIGNATURE_HEADER, None)
        envelope.headers[SIGNATURE_HEADER] = self._digest(queue, envelope)

    def verify(self, queue: str, envelope: Envelope) -> None:
        """Raise SignatureError unless the envelope was signed with this key for ``queue``."""
        given = envelope.headers.get(SIGNATURE_HEADER)
        if not isinstance(given, str) or not given:
            raise SignatureError("bad signature: the message is not signed")
        try:
            expected = self._digest(queue, envelope)
        except (RecursionError, TypeError, ValueError) as exc:  # hostile headers: nested too deep
            raise SignatureError(f"bad signature: headers have no canonical form ({type(exc).__name__})") from None
        import hmac  # loaded by _digest already

        if not hmac.compare_digest(given, expected):
            raise SignatureError("bad signature: a header, property, queue or the body differs from what was signed")

    def valid_until(self, signed_at: datetime | None, eta: datetime | None, now: datetime) -> datetime:
        """When a verified message's window closes (the replay memory keeps it that long);
        SignatureError if it is closed already or opens implausibly far in the future."""
        if signed_at is None:
            raise SignatureError(f"bad signature: no {SIGNED_AT_HEADER} timestamp")
        window = timedelta(seconds=self.max_age)
        if signed_at - now > window:
            raise SignatureError(f"signed in the future ({signed_at.isoformat()}): check the producer's clock")
        until = max(signed_at, eta or signed_at) + window
        if now > until:
            raise SignatureError(
                f"signature expired: signed at {signed_at.isoformat()}, valid until {until.isoformat()} "
                f"(signing_max_age={self.max_age:g}s)"
            )
        return until


def signer_for(settings: Settings) -> Signer | None:
    """The app's signer: None when no ``signing_key`` is set (unsigned, Celery's wire form)."""
    return Signer(settings.signing_key, float(settings.signing_max_age)) if settings.signing_key else None
