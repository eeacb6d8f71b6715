"""The wire message: Celery protocol v2 out, strict validation in."""

from __future__ import annotations

import dataclasses
import json
import os
import pickle
import re
import threading
import uuid
from datetime import datetime, timezone

import pytest

from taskq.envelope import Envelope
from taskq.errors import ContentDisallowed, InvalidMessage, SignatureError
from taskq.message import build, new_task_id, parse
from taskq.serialization import accepted_content_types, get_serializer
from taskq.signing import Signer

JSON_ONLY = accepted_content_types(["json"])
JSON = get_serializer("json")


def make(**kw: object) -> Envelope:
    return build("tasks.add", (2, 3), {"z": 1}, task_id="abc", serializer=get_serializer("json"), **kw)  # type: ignore[arg-type]


def test_build_follows_celery_protocol_v2() -> None:
    env = make(priority=7, eta=datetime(2030, 1, 1, tzinfo=timezone.utc))
    h = env.headers
    assert h["lang"] == "py" and h["task"] == "tasks.add" and h["id"] == "abc" and h["root_id"] == "abc"
    assert h["retries"] == 0 and h["timelimit"] == [None, None] and h["eta"] == "2030-01-01T00:00:00+00:00"
    assert {"argsrepr", "kwargsrepr", "origin", "parent_id", "group", "expires"} <= set(h)
    embed = {"callbacks": None, "errbacks": None, "chain": None, "chord": None}
    assert json.loads(env.body) == [[2, 3], {"z": 1}, embed]
    assert env.content_type == "application/json" and env.content_encoding == "utf-8"
    assert env.properties["correlation_id"] == "abc" and env.properties["priority"] == 7


def test_parse_round_trip() -> None:
    msg = parse(make(), JSON_ONLY)
    assert (msg.id, msg.task, msg.args, msg.kwargs, msg.retries) == ("abc", "tasks.add", [2, 3], {"z": 1}, 0)


def test_parse_accepts_a_celery_message_with_naive_eta() -> None:
    env = Envelope(
        headers={"task": "tasks.add", "id": "c1", "eta": "2030-01-01T00:00:00", "retries": 0},
        body=b'[[2, 3], {}, {"callbacks": null, "errbacks": null, "chain": null, "chord": null}]',
    )
    msg = parse(env, JSON_ONLY)
    assert msg.eta == datetime(2030, 1, 1, tzinfo=timezone.utc)


@pytest.mark.parametrize(
    ("headers", "body", "reason"),
    [
        ({"id": "x"}, b"[[], {}, {}]", "no 'task' header"),
        ({"task": "t"}, b"[[], {}, {}]", "no 'id' header"),
        ({"task": "t", "id": "x"}, b"not json", "does not decode"),
        ({"task": "t", "id": "x"}, b"[1, 2]", "not [args, kwargs, embed]"),
        ({"task": "t", "id": "x"}, b"[{}, [], {}]", "args is not a list"),
        ({"task": "t", "id": "x", "retries": "two"}, b"[[], {}, {}]", "retries"),
        ({"task": "t", "id": "x", "eta": "tomorrow"}, b"[[], {}, {}]", "ISO-8601"),
        ({"task": "t", "id": "x"}, b'[[], {}, {"callbacks": 5}]', "must be lists or objects"),
    ],
)
def test_malformed_messages_are_refused_with_a_reason(headers: dict[str, object], body: bytes, reason: str) -> None:
    with pytest.raises(InvalidMessage, match=re.escape(reason)):
        parse(Envelope(headers=headers, body=body), JSON_ONLY)


def test_pickle_is_refused_unless_accepted() -> None:
    env = build("t", (), {}, task_id="p", serializer=get_serializer("pickle"))
    assert pickle.loads(env.body)[0] == []
    with pytest.raises(ContentDisallowed):
        parse(env, JSON_ONLY)
    assert parse(env, accepted_content_types(["json", "pickle"])).id == "p"


def test_msgpack_round_trip() -> None:
    env = build("t", (1, b"\x00"), {}, task_id="m", serializer=get_serializer("msgpack"))
    assert parse(env, accepted_content_types(["msgpack"])).args == [1, b"\x00"]


def test_signed_messages() -> None:
    signer = Signer("secret", 3600)
    env = make(signer=signer, queue="q")
    assert parse(env, JSON_ONLY, signer, "q").id == "abc"
    with pytest.raises(SignatureError):
        parse(env, JSON_ONLY, Signer("other", 3600), "q")
    with pytest.raises(SignatureError):
        parse(make(), JSON_ONLY, signer, "q")  # unsigned
    forged = Envelope(dict(env.headers), env.body.replace(b"[2,3]", b"[2,4]"), properties=env.properties)
    with pytest.raises(SignatureError):
        parse(forged, JSON_ONLY, signer, "q")


def test_envelope_bytes_round_trip_and_garbage() -> None:
    env = make()
    assert Envelope.from_bytes(env.to_bytes()) == env
    for raw in (b"\xff\xfe", b"[]", b'{"headers": 1}', b'{"headers": {}, "body": 5}'):
        with pytest.raises(InvalidMessage):
            Envelope.from_bytes(raw)


@pytest.mark.parametrize("task", ["t.add", 'we"ird{name}', "naïve.tâsk", "has taskq-mark-body in it"])
@pytest.mark.parametrize("task_id", ["plain-id", 'q"uo{te}\\', "ü-id"])
@pytest.mark.parametrize(
    ("args", "kwargs"), [((), {}), ((1, 2.5, None), {}), (('é"\\\n taskq-mark-id', [1]), {"k": "🎉"})]
)
@pytest.mark.parametrize("priority", [0, 9])
def test_the_template_encoding_is_the_generic_encoding(
    task: str, task_id: str, args: tuple[object, ...], kwargs: dict[str, object], priority: int
) -> None:
    envelope = build(task, args, kwargs, task_id=task_id, serializer=JSON, priority=priority)
    generic = dataclasses.replace(envelope, encoded=None).to_bytes()
    assert envelope.to_bytes() == generic
    assert Envelope.from_bytes(envelope.to_bytes()).headers == envelope.headers


@pytest.mark.parametrize(
    "options",
    [
        {"retries": 1},
        {"eta": datetime(2030, 1, 1, tzinfo=timezone.utc)},
        {"headers": {"x": 1}},
        {"signer": Signer("k", 60.0)},
        {"parent_id": "p"},
        {"root_id": "another"},
        {"parent_id": ""},
        {"timelimit": (0, 0)},
    ],
)
def test_calls_beyond_the_plain_shape_take_the_generic_encoding(options: dict[str, object]) -> None:
    plain = build("t.add", (1,), {}, task_id="i", serializer=JSON)
    other = build("t.add", (1,), {}, task_id="i", serializer=JSON, **options)  # type: ignore[arg-type]
    assert plain.plain is not None and other.plain is None


def test_new_task_ids_are_random_uuid4_strings() -> None:
    ids = {new_task_id() for _ in range(2000)}
    assert len(ids) == 2000
    for value in list(ids)[:200]:
        parsed = uuid.UUID(value)
        assert parsed.version == 4 and parsed.variant == uuid.RFC_4122 and str(parsed) == value


def test_task_ids_stay_unique_across_threads_and_forks() -> None:
    first = new_task_id()  # this thread now holds drawn-but-unused ids
    reader, writer = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: its ids must not be the ones the parent still holds
        os.close(reader)
        os.write(writer, ",".join(new_task_id() for _ in range(200)).encode())
        os._exit(0)
    os.close(writer)
    with os.fdopen(reader) as pipe:
        child = set(pipe.read().split(","))
    os.waitpid(pid, 0)
    threads: list[list[str]] = [[], []]

    def draw(into: list[str]) -> None:
        into.extend(new_task_id() for _ in range(1000))

    workers = [threading.Thread(target=draw, args=(ids,)) for ids in threads]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    parent = {first, *(new_task_id() for _ in range(300)), *threads[0], *threads[1]}
    assert len(child) == 200 and len(parent) == 2301
    assert not child & parent


def test_reply_to_travels_in_the_properties_and_bypasses_the_plain_template() -> None:
    from taskq.message import build, new_task_id, parse
    from taskq.serialization import get_serializer

    serializer = get_serializer("json")
    envelope = build("t.add", (1,), {}, task_id=new_task_id(), serializer=serializer, reply_to="caller-q")
    assert envelope.properties["reply_to"] == "caller-q" and envelope.plain is None
    assert parse(envelope, frozenset({"application/json"})).reply_to == "caller-q"
    plain = build("t.add", (1,), {}, task_id=new_task_id(), serializer=serializer)
    assert parse(plain, frozenset({"application/json"})).reply_to == ""


@pytest.mark.parametrize(
    ("embed", "kept"),
    [
        ({"callbacks": None, "errbacks": None, "chain": None, "chord": None}, False),
        ({"callbacks": [], "errbacks": {}, "chain": None, "chord": None}, False),  # empty: nothing to run after
        ({"callbacks": None, "chain": [{"task": "t.next"}]}, True),
        ({"chord": {"task": "t.body"}}, True),
    ],
)
def test_an_embed_is_kept_only_when_it_names_a_step(embed: dict[str, object], kept: bool) -> None:
    msg = parse(Envelope(headers={"task": "t", "id": "x"}, body=json.dumps([[], {}, embed]).encode()), JSON_ONLY)
    assert (msg.embed == embed) if kept else msg.embed is None


def test_an_embed_step_of_the_wrong_type_is_refused_after_valid_ones() -> None:
    body = json.dumps([[], {}, {"callbacks": [{"task": "t.cb"}], "errbacks": None, "chain": 5}]).encode()
    with pytest.raises(InvalidMessage, match="must be lists or objects"):
        parse(Envelope(headers={"task": "t", "id": "x"}, body=body), JSON_ONLY)
