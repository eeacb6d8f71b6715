"""The task message: Celery's protocol version 2, built and validated here only.

Headers ``lang, task, id, root_id, parent_id, group, retries, eta, expires, timelimit
[hard, soft], argsrepr, kwargsrepr, origin``; body ``[args, kwargs, embed]`` where embed is
``{callbacks, errbacks, chain, chord}``; properties ``correlation_id`` (= id), ``reply_to``,
``priority``. ``timelimit`` is [hard, soft], as Celery's code sends it (its docs say the
reverse; REFERENCE.md section 1).
"""

from __future__ import annotations

import os
import reprlib
import socket
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

from taskq.envelope import Envelope
from taskq.errors import InvalidMessage, SignatureError
from taskq.serialization import SIGNATURE_HEADER, Serializer, decode_body, sign, verify

EMPTY_EMBED: dict[str, Any] = {"callbacks": None, "errbacks": None, "chain": None, "chord": None}
ORIGIN = f"{os.getpid()}@{socket.gethostname()}"
_repr = reprlib.Repr()
_repr.maxstring = _repr.maxother = 256


@dataclass(slots=True)
class TaskMessage:
    """A validated message, ready to run."""

    id: str
    task: str
    args: list[Any]
    kwargs: dict[str, Any]
    retries: int = 0
    eta: datetime | None = None
    expires: datetime | None = None
    root_id: str | None = None
    parent_id: str | None = None
    group: str | None = None
    priority: int = 0
    headers: dict[str, Any] = field(default_factory=dict)


def build(
    task: str,
    args: tuple[Any, ...] | list[Any],
    kwargs: dict[str, Any],
    *,
    task_id: str,
    serializer: Serializer,
    retries: int = 0,
    eta: datetime | None = None,
    expires: datetime | None = None,
    priority: int = 0,
    root_id: str | None = None,
    parent_id: str | None = None,
    timelimit: tuple[float | None, float | None] = (None, None),
    headers: dict[str, Any] | None = None,
    signing_key: str | None = None,
) -> Envelope:
    body = serializer.dumps([list(args), kwargs, EMPTY_EMBED])
    all_headers: dict[str, Any] = {
        "lang": "py",
        "task": task,
        "id": task_id,
        "shadow": None,
        "eta": eta.isoformat() if eta else None,
        "expires": expires.isoformat() if expires else None,
        "group": None,
        "group_index": None,
        "retries": retries,
        "timelimit": list(timelimit),
        "root_id": root_id or task_id,
        "parent_id": parent_id,
        "argsrepr": _repr.repr(tuple(args)) if args else "()",
        "kwargsrepr": _repr.repr(kwargs) if kwargs else "{}",
        "origin": ORIGIN,
        "ignore_result": False,
    }
    if headers:
        all_headers.update(headers)
    if signing_key:
        all_headers[SIGNATURE_HEADER] = sign(signing_key, all_headers, body)
    return Envelope(
        headers=all_headers,
        body=body,
        content_type=serializer.content_type,
        content_encoding=serializer.content_encoding,
        properties={"correlation_id": task_id, "reply_to": "", "priority": priority, "delivery_mode": 2},
    )


def parse_time(value: Any, name: str) -> datetime | None:
    if value in (None, ""):
        return None
    if not isinstance(value, str):
        raise InvalidMessage(f"header {name!r} is not an ISO-8601 string")
    try:
        when = datetime.fromisoformat(value)
    except ValueError:
        raise InvalidMessage(f"header {name!r} is not ISO-8601: {value!r}") from None
    return when if when.tzinfo else when.replace(tzinfo=timezone.utc)  # naive means UTC (Celery)


def parse(envelope: Envelope, accepted: frozenset[str], signing_key: str | None = None) -> TaskMessage:
    """Validate an envelope; any defect raises InvalidMessage with a one-line reason."""
    h = envelope.headers
    task, task_id = h.get("task"), h.get("id")
    if not isinstance(task, str) or not task:
        raise InvalidMessage("no 'task' header: not a protocol-v2 task message")
    if not isinstance(task_id, str) or not task_id:
        raise InvalidMessage("no 'id' header")
    if signing_key and not verify(signing_key, h, envelope.body):
        raise SignatureError("signature missing or invalid")
    body = decode_body(envelope.body, envelope.content_type, accepted)
    if not isinstance(body, (list, tuple)) or len(body) != 3:
        raise InvalidMessage("body is not [args, kwargs, embed]")
    args, kwargs, embed = body
    if not isinstance(args, (list, tuple)) or not isinstance(kwargs, dict):
        raise InvalidMessage("body args is not a list or kwargs is not an object")
    if embed is not None and not isinstance(embed, dict):
        raise InvalidMessage("body embed is not an object")
    if embed and any(embed.get(k) for k in EMPTY_EMBED):
        raise InvalidMessage("canvas not supported yet (callbacks, errbacks, chain or chord)")
    retries = h.get("retries") or 0
    if not isinstance(retries, int):
        raise InvalidMessage("header 'retries' is not an integer")
    return TaskMessage(
        id=task_id,
        task=task,
        args=list(args),
        kwargs=kwargs,
        retries=retries,
        eta=parse_time(h.get("eta"), "eta"),
        expires=parse_time(h.get("expires"), "expires"),
        root_id=h.get("root_id"),
        parent_id=h.get("parent_id"),
        group=h.get("group"),
        priority=envelope.priority,
        headers=h,
    )
