"""The compact form of an envelope inside a Redis stream entry (and a delayed member).

What is stored is taskq's own: nothing but taskq reads a stream entry (Celery interop on
Redis goes through kombu's transport), so the entry carries only what differs from a plain
protocol-v2 message, and everything that leaves Redis (deliveries, dead letters) is the full
envelope again. Layout, version 1::

    0x01  JSON {"h": headers, "p": properties, "t": ct, "e": ce, "x": [...], "y": [...], "k": 1}  0x0A  body

* ``h`` the headers whose value differs from ``_HEADERS`` (``root_id`` defaults to
  the id); ``p`` likewise for properties (``correlation_id`` defaults to the id);
* ``t`` / ``e`` content type / encoding when not JSON / utf-8;
* ``x`` / ``y`` the default headers / properties the envelope does not have at all;
* the body follows the newline as raw bytes (no base64, no escaping: a 1 MB argument is a
  slice). Compact JSON never holds a raw newline, so the first one ends the header part.
  A JSON body whose embed is the empty one (the usual call) is stored without it, unless
  ``k`` (keep) says it was stored whole.

Decoding is exact: ``decode(encode(e))`` equals ``e`` key for key (order aside). Entries
that do not start with the version byte are the older full JSON envelopes and still decode.
A plain no-argument call takes about 100 bytes instead of 630.
"""

from __future__ import annotations

import json
from json.encoder import encode_basestring_ascii as _quote
from typing import Any

from taskq.bigjson import loads_utf8
from taskq.envelope import JSON, Envelope
from taskq.errors import InvalidMessage

VERSION_1 = b"\x01"
_SEPARATOR = b"\n"
# The serializer's JSON for an empty embed (message.EMPTY_EMBED), as it ends a plain body.
EMBED_SUFFIX = b',{"callbacks":null,"errbacks":null,"chain":null,"chord":null}]'
_ABSENT = object()  # task, id, origin: every message has its own
_ID = object()  # root_id / correlation_id: the message id
_TIMELIMIT = object()  # a fresh [None, None] per message (a list is mutable)
# Headers and properties in the order message.build writes them (decoding keeps it), with
# their defaults: what a message does not store.
_HEADERS: dict[str, Any] = {
    "lang": "py", "task": _ABSENT, "id": _ABSENT, "shadow": None, "eta": None, "expires": None, "group": None,
    "group_index": None, "retries": 0, "timelimit": _TIMELIMIT, "root_id": _ID, "parent_id": None,
    "argsrepr": "()", "kwargsrepr": "{}", "origin": _ABSENT, "ignore_result": False,
}  # fmt: skip
_PROPERTIES: dict[str, Any] = {"correlation_id": _ID, "reply_to": "", "priority": 0, "delivery_mode": 2}
HEADER_DEFAULTS = {k: [None, None] if v is _TIMELIMIT else v for k, v in _HEADERS.items() if v not in (_ABSENT, _ID)}
PROPERTY_DEFAULTS = {k: v for k, v in _PROPERTIES.items() if v is not _ID}
_HEADER_PLACEHOLDERS = [(k, v) for k, v in _HEADERS.items() if v in (_ABSENT, _ID, _TIMELIMIT)]
_PROPERTY_PLACEHOLDERS = [(k, v) for k, v in _PROPERTIES.items() if v is _ID]
_ENCODE = json.JSONEncoder(separators=(",", ":"), check_circular=False).encode


def _same(value: Any, default: Any) -> bool:
    # The type too: 0 == False and 1 == 1.0 in Python, but not once decoded from JSON.
    return type(value) is type(default) and value == default


def _differences(given: dict[str, Any], defaults: dict[str, Any], own: str, task_id: Any) -> dict[str, Any]:
    """``given`` without the entries equal to their default; ``own`` defaults to the id."""
    return {
        k: v
        for k, v in given.items()
        if not _same(v, defaults.get(k, _ABSENT)) and not (k == own and _same(v, task_id))
    }


def _absent(given: dict[str, Any], defaults: dict[str, Any], own: str, task_id: Any) -> list[str]:
    """The defaults (and ``own``, when there is an id) that ``given`` does not have at all."""
    names = [k for k in defaults if k not in given]
    return [*names, own] if task_id is not _ABSENT and own not in given else names


def encode(envelope: Envelope) -> bytes:
    return b"".join(encode_parts(envelope))


def encode_parts(envelope: Envelope) -> tuple[bytes, bytes | memoryview]:
    """The entry in two parts, the version byte and header part, then the body (a view of
    the envelope's, not a copy): a big body goes to the socket as it is (broker.publish)."""
    if envelope.plain is not None:
        return _encode_plain(envelope)
    return _encode_any(envelope)


def _body(envelope: Envelope) -> bytes | memoryview | None:
    """The body as stored: without the empty embed that ends a plain JSON body (a view, not
    a copy); None when it is stored whole (``k``)."""
    body = envelope.body
    if envelope.content_type == JSON and body.endswith(EMBED_SUFFIX):
        return memoryview(body)[: -len(EMBED_SUFFIX)]
    return None


def _encode_plain(envelope: Envelope) -> tuple[bytes, bytes | memoryview]:
    """``encode_any`` of a plain call, in a third of the time: message.build sets
    ``plain`` only for a JSON call whose headers and properties are the defaults but for
    task, id (= root id = correlation id), argsrepr, kwargsrepr, origin and priority."""
    h = envelope.headers
    parts = ['{"h":{"task":', _quote(h["task"]), ',"id":', _quote(h["id"])]
    if h["argsrepr"] != "()":
        parts += [',"argsrepr":', _quote(h["argsrepr"])]
    if h["kwargsrepr"] != "{}":
        parts += [',"kwargsrepr":', _quote(h["kwargsrepr"])]
    parts += [',"origin":', _quote(h["origin"]), "}"]
    priority = envelope.properties["priority"]
    if priority:
        parts.append(f',"p":{{"priority":{int(priority)}}}')
    body = _body(envelope)
    if body is None:
        parts.append(',"k":1')
    parts.append("}")
    return b"".join((VERSION_1, "".join(parts).encode(), _SEPARATOR)), envelope.body if body is None else body


def encode_any(envelope: Envelope) -> bytes:
    """``encode`` without the plain call's shortcut (tests check that both agree)."""
    return b"".join(_encode_any(envelope))


def _encode_any(envelope: Envelope) -> tuple[bytes, bytes | memoryview]:
    headers, properties = envelope.headers, envelope.properties
    task_id = headers.get("id", _ABSENT)
    meta: dict[str, Any] = {"h": _differences(headers, HEADER_DEFAULTS, "root_id", task_id)}
    props = _differences(properties, PROPERTY_DEFAULTS, "correlation_id", task_id)
    if props:
        meta["p"] = props
    absent = _absent(headers, HEADER_DEFAULTS, "root_id", task_id)
    if absent:
        meta["x"] = absent
    absent = _absent(properties, PROPERTY_DEFAULTS, "correlation_id", task_id)
    if absent:
        meta["y"] = absent
    if envelope.content_type != JSON:
        meta["t"] = envelope.content_type
    if envelope.content_encoding != "utf-8":
        meta["e"] = envelope.content_encoding
    body = _body(envelope)
    if body is None:
        meta["k"] = 1
    return b"".join((VERSION_1, _ENCODE(meta).encode(), _SEPARATOR)), envelope.body if body is None else body


def decode(raw: bytes) -> Envelope:
    """The envelope of a stored entry, compact or the older full JSON; anything else raises
    InvalidMessage with the reason."""
    if raw[:1] != VERSION_1:
        return Envelope.from_bytes(raw)
    end = raw.find(_SEPARATOR)
    if end < 0:
        raise InvalidMessage("compact entry has no end of its header part")
    try:
        meta = loads_utf8(raw[1:end])
    except (ValueError, RecursionError) as exc:
        raise InvalidMessage(f"compact entry header is not JSON: {type(exc).__name__}: {exc}") from None
    if not isinstance(meta, dict) or not isinstance(meta.get("h"), dict):
        raise InvalidMessage("compact entry header is not an object with headers")
    given, props = meta["h"], meta.get("p", {})
    absent, absent_props = meta.get("x", []), meta.get("y", [])
    content_type, content_encoding = meta.get("t", JSON), meta.get("e", "utf-8")
    if not isinstance(props, dict) or not isinstance(absent, list) or not isinstance(absent_props, list):
        raise InvalidMessage("compact entry properties/absent lists are malformed")
    if not isinstance(content_type, str) or not isinstance(content_encoding, str):
        raise InvalidMessage("compact entry content-type/content-encoding are not strings")
    task_id = given.get("id", _ABSENT)
    headers = _filled(_HEADERS, _HEADER_PLACEHOLDERS, given, task_id, absent)
    properties = _filled(_PROPERTIES, _PROPERTY_PLACEHOLDERS, props, task_id, absent_props)
    # One copy of the body, however big: join reads the slice of the entry in place.
    body = raw[end + 1 :] if "k" in meta else b"".join((memoryview(raw)[end + 1 :], EMBED_SUFFIX))
    return Envelope(headers, body, content_type, content_encoding, properties)


def _filled(
    template: dict[str, Any],
    placeholders: list[tuple[str, object]],
    given: dict[str, Any],
    task_id: Any,
    absent: list[str],
) -> dict[str, Any]:
    """``given`` over the template's defaults, in the template's order; placeholders
    resolved (the id, a fresh time limit) or dropped, and the ``absent`` names removed."""
    filled = {**template, **given}
    for name, placeholder in placeholders:
        if filled[name] is not placeholder:
            continue  # given
        if placeholder is _ID and task_id is not _ABSENT:
            filled[name] = task_id
        elif placeholder is _TIMELIMIT:
            filled[name] = [None, None]
        else:
            del filled[name]
    for name in absent:
        filled.pop(name, None)
    return filled


def full(raw: bytes) -> bytes:
    """The stored bytes as the full protocol-v2 envelope (``Envelope.to_bytes``), for what
    leaves Redis as bytes (dead letters); bytes that do not decode are returned as they are."""
    if raw[:1] != VERSION_1:
        return raw
    try:
        return decode(raw).to_bytes()
    except InvalidMessage:
        return raw
