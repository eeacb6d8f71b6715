"""Poison for every broker: malformed messages as a foreign or broken producer stores them.

* ``shapes(task)``: the fixed shapes found in the wild (issue 14), each with the id its dead
  letter should carry where the id can be read at all.
* ``fuzz(seed, count, task)``: a seeded generator of random malformed (and some valid)
  envelopes, made by mutating a valid one: wrong types, deep nesting, broken bytes.
* ``inject(broker, queue, messages)``: stores them raw, past every producer-side check: a
  row for SQLite and PostgreSQL, a stream entry for Redis, an AMQP message (pika) for
  RabbitMQ, the stored blob for the memory broker.
* ``store_unreadable_result(backend, task_id, blob)``: a result another serializer wrote.
"""

from __future__ import annotations

import json
import random
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import pika

EMBED = {"callbacks": None, "errbacks": None, "chain": None, "chord": None}
DEEP = 100_000  # deeper than any stack: json.loads raises RecursionError
AMQP_DEPTH = 40  # nesting pika can encode and decode (deeper is the RabbitMQ link's concern)


@dataclass
class Raw:
    """One message as stored: an envelope document (any JSON value) or raw bytes."""

    doc: Any = None
    blob: bytes | None = None
    dead_id: str | None = None  # the id its dead letter carries, when it has a readable one
    amqp: bool = True  # False: AMQP cannot carry the defect (a priority is an octet there)

    def to_blob(self) -> bytes:
        if self.blob is not None:
            return self.blob
        return expand(json.dumps(self.doc, separators=(",", ":"), allow_nan=True)).encode()


# A value nested N deep stands in a document as the string "@@deep:N@@" and becomes
# brackets in the encoded text: json.dumps itself cannot write what is deeper than its stack.
_DEEP = re.compile(r'"@@deep:(\d+)@@"')


def deep(depth: int) -> str:
    return f"@@deep:{depth}@@"


def expand(text: str) -> str:
    return _DEEP.sub(lambda m: "[" * int(m.group(1)) + "]" * int(m.group(1)), text)


def valid_doc(task: str, task_id: str, args: list[Any] | None = None) -> dict[str, Any]:
    return {
        "headers": {"lang": "py", "task": task, "id": task_id, "root_id": task_id, "retries": 0, "eta": None,
                    "expires": None, "argsrepr": "()", "kwargsrepr": "{}"},
        "properties": {"correlation_id": task_id, "priority": 0, "delivery_mode": 2},
        "content-type": "application/json",
        "content-encoding": "utf-8",
        "body_encoding": "utf-8",
        "body": json.dumps([args or [], {}, EMBED]),
    }


def _with(doc: dict[str, Any], where: str, key: str, value: Any) -> dict[str, Any]:
    doc = json.loads(json.dumps(doc))
    (doc if where == "" else doc[where])[key] = value
    return doc


def shapes(task: str) -> list[Raw]:
    """The shapes issue 14 found, and their neighbours; every one must be dead-lettered."""
    out = [
        # A deeply nested envelope: RecursionError inside the broker's fetch.
        Raw(blob=b'{"headers":{"task":"%s","id":"deep"},"properties":%s}'
            % (task.encode(), b"[" * DEEP + b"]" * DEEP)),
        Raw(_with(valid_doc(task, "prio-word"), "properties", "priority", "high"), dead_id="prio-word", amqp=False),
        Raw(_with(valid_doc(task, "prio-list"), "properties", "priority", [1]), dead_id="prio-list", amqp=False),
        Raw(blob=json.dumps(valid_doc(task, "prio-inf")).replace('"priority": 0', '"priority": 1e400').encode(),
            dead_id="prio-inf", amqp=False),
        Raw(_with(valid_doc(task, "x"), "headers", "id", deep(500))),
        Raw(_with(valid_doc(task, "deep-body"), "", "body", "[" * DEEP + "]" * DEEP), dead_id="deep-body"),
        Raw(blob=b"\xff\xfe not json at all"),
        Raw(blob=b""),
        Raw([1, 2, 3]),
        Raw(_with(valid_doc(task, "x"), "", "headers", "not an object")),
        Raw(_with(valid_doc(task, "body-int"), "", "body", 5), dead_id=None),
        Raw(_with(_with(valid_doc(task, "b64"), "", "body_encoding", "base64"), "", "body", "!!!")),
        Raw(blob=json.dumps(valid_doc(task, "surrogate")).replace('"body": "', '"body": "\\ud800').encode()),
        Raw(_with(valid_doc(task, "ctype"), "", "content-type", ["application/json"])),
        Raw(_with(valid_doc(task, "ctype-yaml"), "", "content-type", "application/x-yaml"), dead_id="ctype-yaml"),
        Raw(_with(valid_doc(task, "retries-word"), "headers", "retries", "x"), dead_id="retries-word"),
        Raw(_with(valid_doc(task, "root-obj"), "headers", "root_id", {"a": 1}), dead_id="root-obj"),
        Raw(_with(valid_doc(task, "eta-word"), "headers", "eta", "yesterday"), dead_id="eta-word"),
        Raw(_with(valid_doc(task, "expires-list"), "headers", "expires", [1]), dead_id="expires-list"),
        Raw(_with(valid_doc(task, "args-int"), "", "body", "[5, {}, {}]"), dead_id="args-int"),
        Raw(_with(valid_doc(task, "kwargs-list"), "", "body", "[[], [], {}]"), dead_id="kwargs-list"),
        Raw(_with(valid_doc(task, "embed-int"), "", "body", "[[], {}, 5]"), dead_id="embed-int"),
        Raw(_with(valid_doc(task, "task-int"), "headers", "task", 5), dead_id="task-int"),
        Raw(valid_doc("no.such.task", "unknown"), dead_id="unknown"),
    ]
    return out


def expected_dead_ids(broker: Any, messages: Sequence[Raw]) -> set[str]:
    """The ids the dead letters of ``messages`` carry on this broker."""
    rabbit = type(broker).__name__ == "RabbitMQBroker"
    return {m.dead_id for m in messages if m.dead_id and (m.amqp or not rabbit)}


# -- the fuzzer --------------------------------------------------------------------------------
_TEXT = "ab\u00e9\u4e2d\U0001f600 \"\\{}[]:,\x00\x7f01"


def _value(rng: random.Random, depth: int = 0) -> Any:
    kind = rng.randrange(12 if depth < 3 else 8)
    if kind == 0:
        return None
    if kind == 1:
        return rng.choice([True, False])
    if kind == 2:
        return rng.choice([0, -1, 1, 9, 10, 255, 256, 2**63, -(2**63) - 1, 10**30])
    if kind == 3:
        return rng.choice([0.5, -1.5, 1e400, -1e400, float("nan"), 1e-300])
    if kind in (4, 5, 6, 7):
        return "".join(rng.choice(_TEXT) for _ in range(rng.choice([0, 1, 5, 40, 2000])))
    if kind in (8, 9):
        return [_value(rng, depth + 1) for _ in range(rng.randrange(4))]
    if kind == 10:
        return {"".join(rng.choice(_TEXT) for _ in range(rng.randrange(6))): _value(rng, depth + 1)
                for _ in range(rng.randrange(4))}
    return deep(rng.choice([10, 300, 900, 5000]))


def _mutate(rng: random.Random, doc: dict[str, Any], task: str) -> Any:
    where = rng.randrange(10)
    if where == 0:
        return _value(rng)  # the whole document
    if where in (1, 2, 3):
        key = rng.choice([*doc["headers"], "timelimit", "group", "parent_id", "x-other"])
        if rng.random() < 0.2:
            doc["headers"].pop(key, None)
        else:
            doc["headers"][key] = _value(rng)
    elif where == 4:
        props = doc["properties"] if isinstance(doc.get("properties"), dict) else {}
        doc["properties"] = {**props, "priority": _value(rng)}
    elif where == 5:
        doc[rng.choice(["headers", "properties"])] = _value(rng)
    elif where == 6:
        parts: list[Any] = [[], {}, EMBED]
        parts[rng.randrange(3)] = _value(rng)
        text = expand(json.dumps(parts))
        doc["body"] = text if rng.random() < 0.8 else text[: rng.randrange(12)]
    elif where == 7:
        doc["body"] = _value(rng)
    elif where == 8:
        doc[rng.choice(["content-type", "content-encoding", "body_encoding"])] = _value(rng)
    else:
        doc["headers"]["task"] = rng.choice([task, task + "x", "", _value(rng)])
    return doc


def fuzz(seed: int, count: int, task: str, prefix: str = "fz", raw_bytes: bool = True) -> list[Raw]:
    """``count`` random messages for ``task``: mostly malformed, some still valid (those must
    run). ``raw_bytes`` adds byte-level damage (for brokers that store one blob)."""
    rng = random.Random(seed)
    out: list[Raw] = []
    for i in range(count):
        doc: Any = valid_doc(task, f"{prefix}-{i}", [i])
        for _ in range(rng.choice([1, 1, 2, 3])):
            doc = _mutate(rng, doc, task) if isinstance(doc, dict) and isinstance(doc.get("headers"), dict) else doc
        raw = Raw(doc)
        if raw_bytes and rng.random() < 0.15:
            blob = bytearray(raw.to_blob())
            for _ in range(rng.randrange(1, 4)):
                at = rng.randrange(len(blob) or 1)
                blob[at:at + 1] = bytes([rng.randrange(256)]) * rng.choice([0, 1, 2])
            raw = Raw(blob=bytes(blob))
        out.append(raw)
    return out


# -- putting messages into each broker raw -------------------------------------------------------
def inject(broker: Any, queue: str, messages: Sequence[Raw]) -> None:
    kind = type(broker).__name__
    if kind == "MemoryBroker":
        _inject_memory(broker, queue, messages)
    elif kind == "SQLiteBroker":
        conn = broker.connection()  # autocommit: one transaction around the batch
        conn.execute("BEGIN IMMEDIATE")
        conn.executemany("INSERT INTO taskq_messages (queue, payload) VALUES (?, ?)",
                         [(queue, m.to_blob()) for m in messages])
        conn.execute("COMMIT")
    elif kind == "RedisBroker":
        pipe = broker.client.pipeline(transaction=False)
        for m in messages:
            pipe.xadd(broker.lane_key(queue, 0), {"m": m.to_blob()})
        pipe.execute()
    elif kind == "RabbitMQBroker":
        _inject_amqp(broker, queue, messages)
    elif kind == "PostgresBroker":
        conn = broker.connection()
        with conn.transaction(), conn.cursor() as cursor:  # one commit: one NOTIFY wakes the worker
            cursor.executemany(f'INSERT INTO "{broker.schema}".messages (queue, payload) VALUES (%s, %s)',
                               [(queue, m.to_blob()) for m in messages])
    else:
        raise AssertionError(f"no raw injection for {kind}")


def _inject_memory(broker: Any, queue: str, messages: Sequence[Raw]) -> None:
    from taskq.brokers.memory import _Message

    state = broker._s
    with state.cond:
        for m in messages:
            msg_id = next(state.seq)
            state.messages[msg_id] = _Message(queue, m.to_blob(), 0)
            broker._push_ready(msg_id)
        state.cond.notify_all()


def amqp_parts(raw: Raw) -> tuple[pika.BasicProperties, bytes]:
    """The AMQP form of a message: headers, properties and body as a foreign producer sends
    them (values pika cannot carry become strings; the body is sent as it is)."""
    doc = raw.doc
    if raw.blob is not None or not isinstance(doc, dict):
        return pika.BasicProperties(delivery_mode=2), raw.to_blob()
    headers = doc.get("headers")
    props = doc.get("properties")
    priority = props.get("priority") if isinstance(props, dict) else None
    body = doc.get("body")
    ctype = doc.get("content-type")
    return (
        pika.BasicProperties(
            headers=_amqp_value(headers, 0) if isinstance(headers, dict) else None,
            content_type=ctype if isinstance(ctype, str) and len(ctype.encode()) < 256 else None,
            priority=priority if type(priority) is int and 0 <= priority <= 255 else None,
            delivery_mode=2,
        ),
        body.encode("utf-8", "surrogatepass") if isinstance(body, str) else json.dumps(body).encode(),
    )


def _amqp_value(value: Any, depth: int) -> Any:
    if depth > AMQP_DEPTH:
        return "too deep"
    marker = _DEEP.fullmatch(json.dumps(value)) if isinstance(value, str) else None
    if marker:  # as deep as AMQP carries here
        value = json.loads(expand(json.dumps(deep(min(int(marker.group(1)), AMQP_DEPTH)))))
    if isinstance(value, dict):
        return {str(k).encode()[:200].decode(errors="ignore"): _amqp_value(v, depth + 1) for k, v in value.items()}
    if isinstance(value, list):
        return [_amqp_value(v, depth + 1) for v in value]
    if isinstance(value, float):
        return str(value)
    if isinstance(value, int) and not isinstance(value, bool) and not -(2**63) <= value < 2**63:
        return str(value)
    return value


def _inject_amqp(broker: Any, queue: str, messages: Sequence[Raw]) -> None:
    from taskq.brokers.rabbitmq import connection_parameters
    from taskq.brokers.rabbitmq.wire import queue_arguments

    with pika.BlockingConnection(connection_parameters(broker.url)) as connection:
        channel = connection.channel()
        channel.queue_declare(queue, durable=True, arguments=queue_arguments(queue, broker.settings))
        for m in messages:
            properties, body = amqp_parts(m)
            channel.basic_publish("", queue, body, properties)


def dead_count(broker: Any, queue: str) -> int:
    """How many dead letters the queue has (RabbitMQ: the dead queue's count, not a sweep
    through thousands of messages)."""
    if type(broker).__name__ != "RabbitMQBroker":
        return len(broker.dead_letters(queue, limit=10**6))
    from taskq.brokers.rabbitmq import connection_parameters
    from taskq.brokers.rabbitmq.wire import dead_queue

    with pika.BlockingConnection(connection_parameters(broker.url)) as connection:
        return int(connection.channel().queue_declare(dead_queue(queue), passive=True).method.message_count)


def store_unreadable_result(backend: Any, task_id: str, blob: bytes) -> None:
    """Store ``blob`` as the task's result, as a Celery worker with another result_serializer
    (pickle) writes it: the whole value under the key on key-value backends; on a db+ backend,
    whose columns hold the parts of the document, a SUCCESS row whose result column is ``blob``."""
    if type(backend).__name__ != "DatabaseBackend":
        backend._set(backend.key_for(task_id), blob, 600)
        return
    from taskq.backends.db_tables import upsert

    row = {"task_id": task_id, "status": "SUCCESS", "result": blob, "date_done": None, "traceback": None,
           "children": None}
    with backend.engine.begin() as conn:
        conn.execute(upsert(backend.dialect, backend.task, [row], "task_id", ["status", "result", "date_done"]))
