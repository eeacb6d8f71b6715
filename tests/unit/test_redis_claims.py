"""Redis broker: scripts that meet foreign data, and claims that changed hands.

Redis does not roll back a script that fails half-way, so a script must never fail after it
has written: these tests put entries in the broker's keys that taskq itself never writes and
check that every message is still delivered exactly once.
"""

from __future__ import annotations

import time
import uuid

import pytest
import redis

from taskq.brokers.base import Delivery, Publication
from taskq.brokers.redis import GROUP, RedisBroker
from taskq.brokers.redis.acks import _id_range
from taskq.errors import BrokerError
from tests.unit.test_redis_broker import MakeBroker, envelope, ids
from tests.unit.test_redis_broker import make_broker as make_broker  # the fixture


def raw_client(broker: RedisBroker) -> redis.Redis:
    return redis.Redis.from_url(broker.url)


def test_a_malformed_delayed_entry_is_dead_lettered_and_due_messages_move_once(make_broker: MakeBroker) -> None:
    broker = make_broker()
    q = "q-" + uuid.uuid4().hex[:8]
    # Given two due delayed messages with a foreign member between them (its "lane" is not a digit)
    now = time.time()
    broker.publish_many([Publication(q, envelope("early"), now + 0.2), Publication(q, envelope("late"), now + 0.4)])
    client = raw_client(broker)
    try:
        client.zadd(broker.delayed_key(q), {b"x-not-a-lane-prefix": now + 0.3, b"7short": now + 0.35})
        time.sleep(max(0.0, now + 0.45 - time.time()))  # all four are due now
        # When workers fetch, again and again
        got = broker.fetch([q], 10, timeout=2)
        for _ in range(3):
            got += broker.fetch([q], 10, timeout=0.1)
        # Then each real message was delivered once, and the foreign members are dead letters
        assert sorted(ids(got)) == ["early", "late"]
        assert client.zcard(broker.delayed_key(q)) == 0
    finally:
        client.close()
    dead = broker.dead_letters(q)
    assert sorted(d.raw for d in dead) == [b"7short", b"x-not-a-lane-prefix"]
    assert all(d.id.startswith("malformed-delayed-") and "malformed delayed entry" in d.reason for d in dead)
    assert q in broker.queues()
    broker.ack(got)
    assert broker.queue_length(q) == 0


def test_a_garbled_redelivery_count_does_not_stop_the_fetch(make_broker: MakeBroker) -> None:
    broker = make_broker()
    q = "q-" + uuid.uuid4().hex[:8]
    client = raw_client(broker)
    try:
        client.xadd(broker.lane_key(q, 0), {"m": envelope("garbled").to_bytes(), "r": "not-a-number"})
    finally:
        client.close()
    broker.publish(q, envelope("next"))
    got = broker.fetch([q], 10, timeout=2)
    assert ids(got) == ["garbled", "next"] and got[0].redeliveries == 0
    broker.requeue(got[:1])  # REQUEUE reads the same field
    [back] = broker.fetch([q], 1, timeout=2)
    assert ids([back]) == ["garbled"]
    broker.ack([back, *got[1:]])


def test_dead_letters_with_a_foreign_lane_are_all_requeued(make_broker: MakeBroker) -> None:
    broker = make_broker()
    q = "q-" + uuid.uuid4().hex[:8]
    client = raw_client(broker)
    try:
        for i, lane in enumerate(["x", "12", "3"]):
            fields = {"id": f"d{i}", "reason": "r", "at": "1", "lane": lane, "m": envelope(f"d{i}").to_bytes()}
            client.xadd(broker.dead_key(q), fields)  # type: ignore[arg-type]
    finally:
        client.close()
    assert broker.requeue_dead_letters(q) == 3
    got = broker.fetch([q], 10, timeout=2)
    assert ids(got) == ["d2", "d0", "d1"]  # lane 3 first; the foreign lanes went to lane 0
    assert broker.dead_letters(q) == []
    broker.ack(got)


def test_the_fetch_skips_a_lane_key_that_is_not_a_stream(make_broker: MakeBroker) -> None:
    broker = make_broker()
    q = "q-" + uuid.uuid4().hex[:8]
    broker.publish_many([Publication(q, envelope("high", 9)), Publication(q, envelope("low", 0))])
    client = raw_client(broker)
    try:
        client.delete(broker.lane_key(q, 0))
        client.set(broker.lane_key(q, 0), "not a stream")  # a foreign write
        [high] = broker.fetch([q], 10, timeout=2)  # lane 9 is read first and not stranded
        assert ids([high]) == ["high"]
        [pending] = client.xpending_range(broker.lane_key(q, 9), GROUP, "-", "+", 10)
        assert pending["consumer"].decode() == broker.consumer
        broker.ack([high])
        client.delete(broker.lane_key(q, 0))
    finally:
        client.close()


def test_a_publish_chunk_meeting_a_foreign_key_writes_nothing(make_broker: MakeBroker) -> None:
    broker = make_broker()
    q = "q-" + uuid.uuid4().hex[:8]
    client = raw_client(broker)
    try:
        client.set(broker.lanes_key(q), "not a set")  # the last key the chunk would write
        items = [Publication(q, envelope(f"m{i}", i % 2)) for i in range(4)]
        with pytest.raises(BrokerError, match="WRONGTYPE"):
            broker.publish_many(items)
        # Nothing was written, so the caller's retry cannot duplicate anything.
        assert broker.queue_length(q) == 0
        client.delete(broker.lanes_key(q))
    finally:
        client.close()
    broker.publish_many(items)
    assert sorted(ids(drain_all(broker, q))) == ["m0", "m1", "m2", "m3"]


def drain_all(broker: RedisBroker, queue: str) -> list[Delivery]:
    got = broker.fetch([queue], 10, timeout=2)
    broker.ack(got)
    return got


def test_an_ack_or_dead_letter_from_a_former_owner_leaves_the_new_owners_delivery(make_broker: MakeBroker) -> None:
    stalled, other = make_broker(recovery_time=0.5), make_broker(recovery_time=0.5)
    q = "q-" + uuid.uuid4().hex[:8]
    stalled.publish_many([Publication(q, envelope("a")), Publication(q, envelope("b"))])
    # Given a worker that stalled past the claim timeout, whose claims another worker took over
    old = stalled.fetch([q], 2, timeout=2)
    taken = other.fetch([q], 2, timeout=5)
    assert sorted(ids(taken)) == ["a", "b"] and all(d.redeliveries == 1 for d in taken)
    # When the stalled worker wakes up and acks one and dead-letters the other
    stalled.ack(old[:1])
    stalled.dead_letter(old[1], "failed on the stalled worker")
    # Then both still run on the new owner, which alone can settle them
    assert stalled.queue_length(q) == 2 and stalled.dead_letters(q) == []
    client = raw_client(stalled)
    try:
        owners = {p["consumer"].decode() for p in client.xpending_range(stalled.lane_key(q, 0), GROUP, "-", "+", 10)}
    finally:
        client.close()
    assert owners == {other.consumer}
    other.ack(taken)
    assert other.queue_length(q) == 0


def test_an_ack_whose_range_holds_as_many_of_its_own_leaves_the_taken_over_one(make_broker: MakeBroker) -> None:
    stalled, other = make_broker(recovery_time=0.5), make_broker(recovery_time=0.5)
    q = "q-" + uuid.uuid4().hex[:8]
    stalled.publish_many([Publication(q, envelope(f"m{i}")) for i in range(3)])
    # Given m0, m1, m2 claimed by a worker that stalls, then m2 taken over by another worker
    # and m1 claimed back by the first (its keeper extends it)
    held = stalled.fetch([q], 3, timeout=2)
    time.sleep(0.6)
    stalled.extend(held[:2])
    taken = other.fetch([q], 3, timeout=2)
    assert ids(taken) == ["m2"]
    # When the first acks m0 and m2: two of its own lie in that range (m0, m1), as many as
    # named, but not the two named
    stalled.ack([held[0], held[2]])
    # Then m0 alone is settled: m2 runs on, and m1 is still held
    assert stalled.queue_length(q) == 2
    other.ack(taken)
    stalled.ack(held[1:2])
    assert stalled.queue_length(q) == 0


def test_an_ack_settles_exactly_the_entries_named_among_many_held(make_broker: MakeBroker) -> None:
    broker = make_broker(recovery_time=30.0)
    q = "q-" + uuid.uuid4().hex[:8]
    broker.publish_many([Publication(q, envelope(f"m{i}", 0 if i % 600 else 5)) for i in range(1300)])
    held = broker.fetch([q], 1300, timeout=2)
    assert len(held) == 1300
    # The first, one in the middle and the last of lane 0 (over 1,000 of ours between them,
    # so the owner check pages through them) and the three of lane 5.
    lane0 = [d for d in held if d.tag[0] == broker.lane_key(q, 0)]
    chosen = [lane0[0], lane0[640], lane0[-1], *(d for d in held if d.tag[0] == broker.lane_key(q, 5))]
    broker.ack(chosen)
    assert len(chosen) == 6 and broker.queue_length(q) == 1300 - 6
    rest = [d for d in held if d not in chosen]
    broker.ack(rest)
    assert broker.queue_length(q) == 0


def test_an_ack_settles_every_entry_named_in_any_order(make_broker: MakeBroker) -> None:
    broker = make_broker(recovery_time=30.0)
    q = "q-" + uuid.uuid4().hex[:8]
    broker.publish_many([Publication(q, envelope(f"m{i}")) for i in range(40)])
    held = broker.fetch([q], 40, timeout=2)
    # A batch's acks mostly come in stream order, not always (recovered claims run first):
    # the owner check's id range must span them all whatever the order.
    shuffled = held[20:30][::-1] + held[:5] + held[35:] + held[5:10][::-1]
    broker.ack(shuffled)
    assert broker.queue_length(q) == 40 - len(shuffled)
    broker.ack([d for d in held if d not in shuffled])
    assert broker.queue_length(q) == 0


@pytest.mark.parametrize(
    "given",
    [
        ["5-0"],
        ["1700000000000-9", "1700000000000-10", "1700000000001-0"],  # seq and ms of more digits
        ["1700000000001-0", "1700000000000-10", "1700000000000-9"],
        ["999999999999-99", "1000000000000-0", "999999999999-100"],  # same length, ms of fewer digits
        ["1000000000000-0", "999999999999-99"],
        ["2-3", "10-1", "2-30", "10-0", "3-0"],
    ],
)
def test_the_ack_id_range_orders_ids_as_numbers(given: list[str]) -> None:
    def number(entry_id: str) -> tuple[int, int]:
        ms, seq = entry_id.split("-")
        return int(ms), int(seq)

    assert _id_range(given) == (min(given, key=number), max(given, key=number))
