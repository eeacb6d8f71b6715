"""The task message: Celery's protocol version 2, built and validated here only.

Headers ``lang, task, id, root_id, parent_id, group, retries, eta, expires, timelimit
[hard, soft], argsrepr, kwargsrepr, origin``; body ``[args, kwargs, embed]`` where embed is
``{callbacks, errbacks, chain, chord}``; properties ``correlation_id`` (= id), ``reply_to``,
``priority``. ``timelimit`` is [hard, soft], as Celery's code sends it (its docs say the
reverse; REFERENCE.md section 1).
"""

from __future__ import annotations

import functools
import os
import re
import reprlib
import socket
import threading
from dataclasses import dataclass, field
from datetime import datetime, timezone
from json.encoder import encode_basestring_ascii as _escape
from typing import Any

from taskq.envelope import MAX_PRIORITY, Envelope
from taskq.errors import InvalidMessage
from taskq.serialization import EMPTY_EMBED, Serializer, decode_body, dumps_call
from taskq.signing import SIGNED_AT_HEADER, Signer

ORIGIN = f"{os.getpid()}@{socket.gethostname()}"
_repr = reprlib.Repr()
_repr.maxstring = _repr.maxother = 256
_SCALARS = frozenset({int, float, str, bool, type(None)})
_SHORT = 40  # reprlib's maxlong: a repr no longer than this is never shortened by it


def _short_scalar(value: Any) -> bool:
    """A scalar whose builtin repr may be short. A str's repr is longer than the str, and the
    repr of a long one escapes every character only to be thrown away: 260 µs of a 100 KB
    argument's ``delay()`` (reprlib shows its first 256 characters only)."""
    kind = type(value)
    return kind in _SCALARS and (kind is not str or len(value) <= _SHORT)


def args_repr(args: tuple[Any, ...]) -> str:
    """``_repr.repr(args)``; the builtin repr where the two cannot differ: at most six scalar
    arguments (reprlib's maxtuple) whose repr is short. reprlib's pure-Python walk took 2 us
    of a call with two arguments."""
    if len(args) <= 6 and all(_short_scalar(a) for a in args):
        text = repr(args)
        if len(text) <= _SHORT:
            return text
    return _repr.repr(args)


def kwargs_repr(kwargs: dict[str, Any]) -> str:
    """``_repr.repr(kwargs)``, which sorts the keys and shows four (maxdict); the builtin
    repr of the sorted dict where the two cannot differ, as ``args_repr``."""
    if len(kwargs) <= 4 and all(type(k) is str and _short_scalar(v) for k, v in kwargs.items()):
        text = repr(dict(sorted(kwargs.items())))
        if len(text) <= _SHORT:
            return text
    return _repr.repr(kwargs)


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
    valid_until: datetime | None = None  # signed messages: when the signature's window closes
    embed: dict[str, Any] | None = None  # callbacks, errbacks, chain, chord: run by taskq/canvas
    reply_to: str = ""  # the sender's reply queue (the rpc:// backend sends the result there)


def new_task_id() -> str:
    """A random UUID4 string, as ``str(uuid.uuid4())`` but cheaper: random bytes are drawn
    128 ids at a time per thread. One ``os.urandom`` call per id released the GIL each time,
    and in a process whose other thread is busy (the RabbitMQ I/O thread) getting it back
    cost a thread switch per call (17 us per id, profiled)."""
    local = _ids
    pool: list[str] | None = getattr(local, "pool", None)
    if not pool or local.generation != _fork_generation:
        raw = os.urandom(16 * _IDS_PER_DRAW).hex()
        pool = local.pool = [raw[i : i + 32] for i in range(0, len(raw), 32)]
        local.generation = _fork_generation
    h = pool.pop()
    return f"{h[:8]}-{h[8:12]}-4{h[13:16]}-{_VARIANT[int(h[16], 16) & 3]}{h[17:20]}-{h[20:]}"


_VARIANT = "89ab"
_IDS_PER_DRAW = 128
_ids = threading.local()
_fork_generation = 0


def _forked() -> None:
    """A child must not hand out the ids its parent drew too."""
    global _fork_generation
    _fork_generation += 1


os.register_at_fork(after_in_child=_forked)


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
    signer: Signer | None = None,
    queue: str = "",
    embed: dict[str, Any] | None = None,
    reply_to: str = "",
) -> Envelope:
    """The envelope of one call; with a ``signer``, signed for ``queue`` (it must be the
    queue the message is published to: the worker verifies against the queue it read)."""
    body = dumps_call(serializer, list(args), kwargs, embed or None)
    argsrepr = args_repr(tuple(args)) if args else "()"
    kwargsrepr = kwargs_repr(kwargs) if kwargs else "{}"
    all_headers = _headers(task, task_id, argsrepr, kwargsrepr, retries, eta, expires, root_id, parent_id, timelimit)
    if headers:
        all_headers.update(headers)
    envelope = _envelope(all_headers, body, serializer, task_id, priority, reply_to)
    if signer is not None:
        signer.sign(queue, envelope)
    plain = not (headers or signer or retries) and eta is None and expires is None and parent_id is None
    plain = plain and timelimit == (None, None) and not reply_to
    if plain and (root_id is None or root_id == task_id) and serializer.content_encoding == "utf-8":
        # The common call: encode from the task's template instead of the whole document.
        envelope.plain = functools.partial(
            _encode_plain, task, priority, serializer, task_id, argsrepr, kwargsrepr, body
        )
    return envelope


def _headers(
    task: str,
    task_id: str,
    argsrepr: str,
    kwargsrepr: str,
    retries: int,
    eta: datetime | None,
    expires: datetime | None,
    root_id: str | None,
    parent_id: str | None,
    timelimit: tuple[float | None, float | None],
) -> dict[str, Any]:
    return {
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
        "argsrepr": argsrepr,
        "kwargsrepr": kwargsrepr,
        "origin": ORIGIN,
        "ignore_result": False,
    }


def _envelope(
    headers: dict[str, Any], body: bytes, serializer: Serializer, task_id: str, priority: int, reply_to: str = ""
) -> Envelope:
    return Envelope(
        headers=headers,
        body=body,
        content_type=serializer.content_type,
        content_encoding=serializer.content_encoding,
        properties={"correlation_id": task_id, "reply_to": reply_to, "priority": priority, "delivery_mode": 2},
    )


# Marks that JSON encoding leaves as they are, standing where each call's values go, in the
# order the encoder writes them (headers id, root_id, argsrepr, kwargsrepr; correlation_id; body).
_MARKS = {"id": "taskq-mark-id", "argsrepr": "taskq-mark-argsrepr", "kwargsrepr": "taskq-mark-kwargsrepr"}
_BODY_MARK = "taskq-mark-body"
_ORDER = ["id", "id", "argsrepr", "kwargsrepr", "id", "body"]
_MARK_PATTERN = re.compile("taskq-mark-(id|argsrepr|kwargsrepr|body)")


@functools.lru_cache(maxsize=512)
def _template(task: str, priority: int, serializer: Serializer) -> tuple[str, ...] | None:
    """The encoded envelope of a plain call of ``task``, cut where the per-call values go.

    It is made by the generic encoder (``Envelope.to_bytes``) from an envelope holding marks
    in place of the per-call values, so the fast path cannot drift from the generic one;
    filling it is one str.join (a tenth of what str.format costs on 600 characters). None
    when the marks do not line up (a task name that contains one): the generic path then."""
    ids, args, kwargs = _MARKS["id"], _MARKS["argsrepr"], _MARKS["kwargsrepr"]
    headers = _headers(task, ids, args, kwargs, 0, None, None, None, None, (None, None))
    text = _envelope(headers, _BODY_MARK.encode(), serializer, ids, priority).to_bytes().decode("ascii")
    pieces = _MARK_PATTERN.split(text)
    return tuple(pieces[0::2]) if pieces[1::2] == _ORDER else None


def _encode_plain(
    task: str, priority: int, serializer: Serializer, task_id: str, argsrepr: str, kwargsrepr: str, body: bytes
) -> bytes | None:
    template = _template(task, priority, serializer)
    if template is None:
        return None
    p0, p1, p2, p3, p4, p5, p6 = template
    tid = _escape(task_id)[1:-1]
    args, kwargs = _escape(argsrepr)[1:-1], _escape(kwargsrepr)[1:-1]
    text = _escape(body.decode("utf-8"))[1:-1]
    return "".join((p0, tid, p1, tid, p2, args, p3, kwargs, p4, tid, p5, text, p6)).encode()


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


def parse(
    envelope: Envelope,
    accepted: frozenset[str],
    signer: Signer | None = None,
    queue: str = "",
    now: datetime | None = None,
) -> TaskMessage:
    """Validate an envelope read from ``queue``; any defect raises InvalidMessage with a
    one-line reason. With a ``signer``, the signature and its window are checked before the
    body is decoded."""
    h = envelope.headers
    task, task_id = h.get("task"), h.get("id")
    if not isinstance(task, str) or not task:
        raise InvalidMessage("no 'task' header: not a protocol-v2 task message")
    if not isinstance(task_id, str) or not task_id:
        raise InvalidMessage("no 'id' header")
    if signer is not None:
        signer.verify(queue, envelope)  # first: nothing unsigned is read further (pickle runs code)
    eta = h.get("eta")
    eta, valid_until = (None if eta is None else parse_time(eta, "eta")), None  # most have none: no call
    if signer is not None:
        signed_at = parse_time(h.get(SIGNED_AT_HEADER), SIGNED_AT_HEADER)
        valid_until = signer.valid_until(signed_at, eta, now or datetime.now(timezone.utc))
    body = decode_body(envelope.body, envelope.content_type, accepted)
    if not isinstance(body, (list, tuple)) or len(body) != 3:
        raise InvalidMessage("body is not [args, kwargs, embed]")
    args, kwargs, embed = body
    if not isinstance(args, (list, tuple)) or not isinstance(kwargs, dict):
        raise InvalidMessage("body args is not a list or kwargs is not an object")
    if embed is not None and not isinstance(embed, dict):
        raise InvalidMessage("body embed is not an object")
    steps = False  # the embed names a callback, errback, chain or chord (else it is dropped)
    if embed and embed != EMPTY_EMBED:  # the usual call's embed is the empty one: one comparison
        for k in EMPTY_EMBED:
            step = embed.get(k)
            if step is None:
                continue
            if not isinstance(step, (list, dict)):
                raise InvalidMessage("body embed: callbacks, errbacks, chain and chord must be lists or objects")
            steps = steps or bool(step)
    retries = h.get("retries") or 0
    if not isinstance(retries, int):
        raise InvalidMessage("header 'retries' is not an integer")
    root_id, parent_id, group = h.get("root_id"), h.get("parent_id"), h.get("group")
    if not (
        (root_id is None or isinstance(root_id, str))
        and (parent_id is None or isinstance(parent_id, str))
        and (group is None or isinstance(group, str))
    ):
        name = next(n for n in ("root_id", "parent_id", "group") if not isinstance(h.get(n), (str, type(None))))
        raise InvalidMessage(f"header {name!r} is not a string")
    priority = envelope.properties.get("priority")
    if priority is None:
        priority = 0
    elif not isinstance(priority, int) or isinstance(priority, bool):
        raise InvalidMessage(f"property 'priority' is not an integer: {_repr.repr(priority)}")
    elif not 0 <= priority <= MAX_PRIORITY:
        priority = min(max(priority, 0), MAX_PRIORITY)  # as Envelope.priority clamps it
    return TaskMessage(
        id=task_id,
        task=task,
        args=list(args),
        kwargs=kwargs,
        retries=retries,
        eta=eta,
        expires=None if (expires := h.get("expires")) is None else parse_time(expires, "expires"),
        root_id=root_id,
        parent_id=parent_id,
        group=group,
        priority=priority,
        headers=h,
        valid_until=valid_until,
        embed=embed if steps else None,
        reply_to=reply_to if isinstance(reply_to := envelope.properties.get("reply_to"), str) else "",
    )
