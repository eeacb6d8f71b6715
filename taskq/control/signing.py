"""Signed control requests: with ``signing_key`` set, a worker obeys only requests that carry
a valid HMAC of what they ask, made within ``signing_max_age`` seconds.

kombu's pidbox fixes a request's headers, so the signature travels in the arguments
(``taskq_signature`` and ``taskq_signed_at``, removed before the command sees them); it
covers the method, the other arguments and the destination. Celery's clients do not sign:
a fleet with signing on is controlled by taskq's clients only (docs/monitoring.md)."""

from __future__ import annotations

import json
import time
from typing import Any

SIGNATURE = "taskq_signature"
SIGNED_AT = "taskq_signed_at"


def _digest(key: str, method: str, arguments: dict[str, Any], destination: list[str] | None) -> str:
    # Imported here: loading OpenSSL's hashes is 3 ms of a worker's start, and only an app
    # with signing_key signs (issue 22, startup).
    import hashlib
    import hmac

    payload = json.dumps([method, arguments, destination], sort_keys=True, separators=(",", ":"), default=repr)
    return hmac.new(key.encode(), b"taskq-control-v1\x00" + payload.encode(), hashlib.sha256).hexdigest()


def sign(key: str, method: str, arguments: dict[str, Any], destination: list[str] | None) -> dict[str, Any]:
    signed = dict(arguments, **{SIGNED_AT: time.time()})
    signed[SIGNATURE] = _digest(key, method, signed, destination)
    return signed


def verify(
    key: str, max_age: float, method: str, arguments: dict[str, Any], destination: list[str] | None
) -> tuple[dict[str, Any] | None, str]:
    """(the arguments without the signature, "") or (None, why it was refused)."""
    given = arguments.get(SIGNATURE)
    rest = {k: v for k, v in arguments.items() if k != SIGNATURE}
    if not isinstance(given, str):
        return None, "unsigned"
    import hmac

    if not hmac.compare_digest(given, _digest(key, method, rest, destination)):
        return None, "bad signature"
    signed_at = rest.pop(SIGNED_AT, None)
    if not isinstance(signed_at, (int, float)) or abs(time.time() - signed_at) > max_age:
        return None, "signature too old or from the future"
    return rest, ""
