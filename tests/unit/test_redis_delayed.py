"""Redis broker: delayed messages (the sorted set) and their promotion by the FETCH script.

A fetch moves up to PROMOTE due members per queue, earliest first, and removes them from the
set in one ZREMRANGEBYRANK; a member it cannot move goes to the dead letters, and what was
moved before it never moves twice; a fetch that fails while promoting (out of memory) leaves
the rest in the set, nothing moved twice.
"""

from __future__ import annotations

import time
import uuid
from pathlib import Path

import pytest
import redis

from taskq.brokers.base import Publication
from taskq.brokers.redis import RedisBroker
from taskq.config import Settings
from taskq.errors import BrokerError
from tests.contract.redis_factories import ThrowawayRedis
from tests.unit.test_redis_broker import MakeBroker, envelope, ids
from tests.unit.test_redis_broker import make_broker as make_broker  # the fixture

PROMOTE = 500  # the FETCH script's bound per queue per call


def raw_client(broker: RedisBroker) -> redis.Redis:
    return redis.Redis.from_url(broker.url)


def test_a_fetch_promotes_at_most_the_bound_earliest_first_and_the_rest_on_the_next(make_broker: MakeBroker) -> None:
    broker = make_broker()
    q = "q-" + uuid.uuid4().hex[:8]
    # Given 1,200 delayed messages, due in the order of their names, all due by now
    start = time.time() + 0.3
    items = [Publication(q, envelope(f"m{i:04}"), start + i * 1e-4) for i in range(1200)]
    broker.publish_many(items[::-1])  # sent latest first: the eta orders them, not the send
    time.sleep(max(0.0, start + 0.15 - time.time()))
    client = raw_client(broker)
    try:
        # When one fetch asks for more than the bound
        first = broker.fetch([q], 2000, timeout=2)
        # Then it promoted exactly the bound, the earliest, and claimed them in eta order
        assert ids(first) == [f"m{i:04}" for i in range(PROMOTE)]
        assert client.zcard(broker.delayed_key(q)) == 1200 - PROMOTE
        # ...and the next fetches take the rest, each once, without waiting for a new eta
        rest = broker.fetch([q], 2000, timeout=0.5) + broker.fetch([q], 2000, timeout=0.5)
        assert ids(rest) == [f"m{i:04}" for i in range(PROMOTE, 1200)]
        assert client.zcard(broker.delayed_key(q)) == 0
    finally:
        client.close()
    broker.ack(first + rest)


def test_a_small_fetch_leaves_the_promoted_surplus_to_other_fetchers(make_broker: MakeBroker) -> None:
    one, other = make_broker(), make_broker()
    q = "q-" + uuid.uuid4().hex[:8]
    at = time.time() + 0.2
    one.publish_many([Publication(q, envelope(f"m{i:02}"), at + i * 1e-3) for i in range(30)])
    time.sleep(max(0.0, at + 0.1 - time.time()))
    # One fetch of 5 promotes every due message; the other fetcher gets the next ones at once
    mine = one.fetch([q], 5, timeout=2)
    theirs = other.fetch([q], 100, timeout=0.5)
    assert ids(mine) == [f"m{i:02}" for i in range(5)]
    assert ids(theirs) == [f"m{i:02}" for i in range(5, 30)]
    one.ack(mine)
    other.ack(theirs)


def test_a_delayed_message_whose_lane_is_not_a_stream_is_dead_lettered_and_the_others_move_once(
    make_broker: MakeBroker,
) -> None:
    broker = make_broker()
    q = "q-" + uuid.uuid4().hex[:8]
    now = time.time()
    # Given due messages of lane 0 around one of lane 3, and lane 3's key is not a stream
    broker.publish_many(
        [
            Publication(q, envelope("a"), now + 0.2),
            Publication(q, envelope("b"), now + 0.25),
            Publication(q, envelope("high", 3), now + 0.3),
            Publication(q, envelope("c"), now + 0.35),
        ]
    )
    client = raw_client(broker)
    try:
        client.set(broker.lane_key(q, 3), "not a stream")  # a foreign write
        time.sleep(max(0.0, now + 0.45 - time.time()))
        # When a worker fetches (a later blocking read would meet the foreign key itself)
        got = broker.fetch([q], 10, timeout=2)
        # Then the others were delivered, each moved once, and the set is empty
        assert ids(got) == ["a", "b", "c"]
        assert client.xlen(broker.lane_key(q, 0)) == 3
        assert client.zcard(broker.delayed_key(q)) == 0
        client.delete(broker.lane_key(q, 3))
    finally:
        client.close()
    [dead] = broker.dead_letters(q)
    assert "lane key is not a stream" in dead.reason and dead.raw.startswith(b"3")
    broker.ack(got)


def test_delayed_messages_are_stored_with_their_eta_as_score(make_broker: MakeBroker) -> None:
    broker = make_broker()
    q = "q-" + uuid.uuid4().hex[:8]
    later = time.time() + 3600
    # 1,500 delayed in one call: a chunk of 1,000 (more than one ZADD of 500) and one of 500
    broker.publish_many([Publication(q, envelope(f"m{i}"), later + i) for i in range(1500)])
    client = raw_client(broker)
    try:
        stored = client.zrange(broker.delayed_key(q), 0, -1, withscores=True)
    finally:
        client.close()
    assert len(stored) == 1500
    assert [score for _, score in stored] == [later + i for i in range(1500)]
    assert all(member[:1] == b"0" for member, _ in stored)


def test_a_fetch_refused_for_memory_while_promoting_leaves_every_message_in_place(tmp_path: Path) -> None:
    server = ThrowawayRedis(tmp_path)
    server.start()
    settings = Settings()
    settings.broker_transport_options = {"retries": 0}
    broker = RedisBroker(server.url, settings)
    client = redis.Redis.from_url(server.url)
    q = "q-" + uuid.uuid4().hex[:8]
    try:
        # Given due delayed messages, and a server that refuses writes (maxmemory reached; Redis
        # checks a script's first write only, so it is the first XADD that is refused)
        at = time.time() + 0.2
        broker.publish_many([Publication(q, envelope(f"m{i}"), at + i * 1e-3) for i in range(5)])
        time.sleep(max(0.0, at + 0.1 - time.time()))
        client.config_set("maxmemory-policy", "noeviction")
        client.config_set("maxmemory", 1)
        # When a worker fetches, the fetch fails: not a dead letter for an error that is not the message's
        with pytest.raises(BrokerError, match="OutOfMemoryError"):
            broker.fetch([q], 10, timeout=1)
        client.config_set("maxmemory", 0)
        assert client.zcard(broker.delayed_key(q)) == 5 and broker.dead_letters(q) == []
        # Then, memory back, each message is delivered once
        got = broker.fetch([q], 10, timeout=2)
        assert ids(got) == [f"m{i}" for i in range(5)]
        assert client.xlen(broker.lane_key(q, 0)) == 5
        broker.ack(got)
    finally:
        client.close()
        broker.close()
        server.stop()
