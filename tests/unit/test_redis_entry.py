"""The compact stream entry of the Redis broker: exact round trips, its size, older entries."""

from __future__ import annotations

import pickle
import uuid
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest
import redis

from taskq.brokers.base import Publication
from taskq.brokers.redis import entry
from taskq.envelope import Envelope
from taskq.errors import InvalidMessage
from taskq.message import build, new_task_id
from taskq.serialization import get_serializer
from taskq.signing import Signer
from tests.unit.test_redis_broker import MakeBroker, make_broker  # noqa: F401 - fixture

JSON = get_serializer("json")


def same(a: Envelope, b: Envelope) -> bool:
    """Equal as the full protocol-v2 document: what every broker's to_bytes would carry."""
    return Envelope.from_bytes(a.to_bytes()) == Envelope.from_bytes(b.to_bytes())


def calls() -> list[Envelope]:
    eta = datetime.now(timezone.utc) + timedelta(seconds=30)
    embed = {"callbacks": [{"task": "cb"}], "errbacks": None, "chain": None, "chord": None}
    return [
        build("t.noop", (), {}, task_id=new_task_id(), serializer=JSON),
        build("t.args", (1, "é", [2.5]), {"k": None}, task_id=new_task_id(), serializer=JSON, priority=7),
        build("t.eta", (), {}, task_id=new_task_id(), serializer=JSON, eta=eta, retries=3, parent_id="p"),
        build("t.embed", (), {}, task_id=new_task_id(), serializer=JSON, embed=embed, reply_to="r"),
        build("t.limits", (), {}, task_id=new_task_id(), serializer=JSON, timelimit=(10.0, 5.0), root_id="root"),
        build("t.msgpack", (b"\x00\xff\n",), {}, task_id=new_task_id(), serializer=get_serializer("msgpack")),
        build("t.pickle", ({1, 2},), {}, task_id=new_task_id(), serializer=get_serializer("pickle")),
        build("t.signed", (), {}, task_id=new_task_id(), serializer=JSON, signer=Signer("k" * 32, 60.0), queue="q"),
        build("t.custom", (), {}, task_id=new_task_id(), serializer=JSON, headers={"x-tenant": "a\nb"}),
    ]


@pytest.mark.parametrize("envelope", calls(), ids=lambda e: e.headers["task"])
def test_every_kind_of_call_round_trips_exactly(envelope: Envelope) -> None:
    raw = entry.encode(envelope)
    assert raw.startswith(entry.VERSION_1)
    decoded = entry.decode(raw)
    assert decoded.headers == envelope.headers
    assert decoded.properties == envelope.properties
    assert decoded.body == envelope.body
    assert (decoded.content_type, decoded.content_encoding) == (envelope.content_type, envelope.content_encoding)


def test_the_plain_path_writes_what_the_generic_one_writes() -> None:
    for envelope in calls():
        assert entry.encode(envelope) == entry.encode_any(envelope), envelope.headers["task"]


@pytest.mark.parametrize(
    ("headers", "properties"),
    [
        ({"task": "t", "id": "i"}, {}),  # a foreign message: the defaults it lacks stay absent
        ({"task": "t", "id": "i", "retries": False, "ignore_result": 0, "root_id": None}, {"priority": 0.0}),
        ({"task": "t"}, {"correlation_id": "c"}),  # no id: nothing defaults to it
        ({"task": "t", "id": 5, "root_id": 5}, {"correlation_id": "5"}),
    ],
)
def test_unusual_headers_round_trip_with_their_types(headers: dict[str, Any], properties: dict[str, Any]) -> None:
    envelope = Envelope(headers, b"[[],{},{}]", properties=properties)
    decoded = entry.decode(entry.encode(envelope))
    assert decoded.headers == headers and decoded.properties == properties
    assert [type(v) for v in decoded.headers.values()] == [type(headers[k]) for k in decoded.headers]
    assert [type(v) for v in decoded.properties.values()] == [type(properties[k]) for k in decoded.properties]


def test_a_plain_call_takes_about_a_sixth_of_the_full_document() -> None:
    envelope = build("bench.noop", (), {}, task_id=new_task_id(), serializer=JSON)
    assert len(entry.encode(envelope)) <= 110 < 600 <= len(envelope.to_bytes())


def test_decoded_entries_do_not_share_mutable_defaults() -> None:
    raw = entry.encode(build("t", (), {}, task_id=new_task_id(), serializer=JSON))
    first = entry.decode(raw)
    first.headers["timelimit"].append(1)
    assert entry.decode(raw).headers["timelimit"] == [None, None]


def test_full_json_entries_written_before_still_decode() -> None:
    envelope = build("t", (1,), {}, task_id=new_task_id(), serializer=JSON)
    assert same(entry.decode(envelope.to_bytes()), envelope)
    assert entry.full(envelope.to_bytes()) == envelope.to_bytes()
    assert same(Envelope.from_bytes(entry.full(entry.encode(envelope))), envelope)


@pytest.mark.parametrize(
    "raw",
    [entry.VERSION_1 + b'{"h":{}}', entry.VERSION_1 + b"not json\n", entry.VERSION_1 + b'{"h":[]}\n', b"\xff"],
)
def test_garbage_raises_invalid_message(raw: bytes) -> None:
    with pytest.raises(InvalidMessage):
        entry.decode(raw)
    assert entry.full(raw) == raw  # kept as it is for the dead letters


def test_the_broker_stores_compact_entries_and_hands_out_full_envelopes(make_broker: MakeBroker) -> None:  # noqa: F811
    broker = make_broker()
    q = "q-" + uuid.uuid4().hex[:8]
    sent = calls()
    eta = datetime.now(timezone.utc).timestamp() + 0.2
    broker.publish(q, sent[0])
    broker.publish_many([Publication(q, e) for e in sent[1:-1]] + [Publication(q, sent[-1], eta)])
    client = redis.Redis.from_url(broker.url)
    try:
        stored = [f[b"m"] for _, f in client.xrange(broker.lane_key(q, 0))]
        assert len(stored[0]) <= 110 and all(raw.startswith(entry.VERSION_1) for raw in stored)
        # An entry written by an older taskq (the full JSON document) is still delivered.
        old = build("t.old", (), {}, task_id=new_task_id(), serializer=JSON)
        client.xadd(broker.lane_key(q, 0), {"m": old.to_bytes()})
    finally:
        client.close()
    got: list[Envelope] = []
    for _ in range(20):
        batch = broker.fetch([q], 20, timeout=1)
        got += [d.envelope for d in batch if d.envelope]
        broker.ack(batch)
        if len(got) == len(sent) + 1:
            break
    by_id = {e.id: e for e in got}
    assert sorted(by_id) == sorted(e.id for e in [*sent, old])
    assert all(same(by_id[e.id], e) for e in [*sent, old])


def test_dead_letters_leave_redis_as_full_envelopes(make_broker: MakeBroker) -> None:  # noqa: F811
    broker = make_broker()
    q = "q-" + uuid.uuid4().hex[:8]
    envelope = build("t.dead", ({"big": "x"},), {}, task_id=new_task_id(), serializer=get_serializer("pickle"))
    broker.publish(q, envelope)
    [d] = broker.fetch([q], 1, timeout=2)
    broker.dead_letter(d, "refused")
    [dead] = broker.dead_letters(q)
    assert dead.raw == envelope.to_bytes()
    assert pickle.loads(Envelope.from_bytes(dead.raw).body)[0] == [{"big": "x"}]
    assert broker.requeue_dead_letters(q) == 1
    [again] = broker.fetch([q], 1, timeout=2)
    assert again.envelope is not None and same(again.envelope, envelope)
    broker.ack([again])
