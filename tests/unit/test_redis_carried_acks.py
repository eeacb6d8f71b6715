"""Acks carried in the next fetch's round trip (taskq/brokers/redis/acks.py): one request a
batch, and no ack lost or applied to another entry when the fetch fails."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
import redis

from taskq.brokers.base import Publication
from tests.unit.test_redis_broker import CommandCounter, MakeBroker, envelope, ids, pipeline_sizes
from tests.unit.test_redis_broker import make_broker as make_broker  # the fixture


def test_a_batchs_acks_ride_with_the_next_fetch_in_one_round_trip(
    make_broker: MakeBroker, monkeypatch: pytest.MonkeyPatch
) -> None:
    broker = make_broker()
    q = "q-" + uuid.uuid4().hex[:8]
    broker.publish_many([Publication(q, envelope(f"m{i}")) for i in range(20)])
    first = broker.fetch([q], 10, timeout=2)
    # Given a finished batch, when the next fetch carries its acks
    pipelines = pipeline_sizes(monkeypatch)
    elsewhere = CommandCounter(broker.client, monkeypatch)
    acks = list(first)
    second = broker.fetch_acking(acks, [q], 10, timeout=2)
    # Then one request held both (the ACK call first), and every ack was taken off the list
    assert pipelines == [2] and elsewhere.calls == []
    assert acks == []
    assert ids(second) == [f"m{i}" for i in range(10, 20)]
    assert broker.queue_length(q) == 10  # the first batch is gone, the second still held
    broker.ack(second)
    assert broker.queue_length(q) == 0


def test_acks_a_failed_fetch_did_not_send_stay_with_the_caller(
    make_broker: MakeBroker, monkeypatch: pytest.MonkeyPatch
) -> None:
    broker = make_broker()
    q = "q-" + uuid.uuid4().hex[:8]
    broker.publish_many([Publication(q, envelope(f"m{i}")) for i in range(4)])
    done = broker.fetch([q], 2, timeout=2)

    # Given a connection that fails every request for now
    def lost(*args: Any, **kwargs: Any) -> Any:
        raise redis.ConnectionError("connection lost")

    monkeypatch.setattr(redis.client.Pipeline, "execute", lost)
    acks = list(done)
    # When a fetch carrying acks gives up at its deadline
    assert broker.fetch_acking(acks, [q], 2, timeout=0.3) == []
    # Then the acks are still the caller's, and once sent they settle exactly those entries
    assert acks == done
    monkeypatch.undo()
    broker.ack(acks)
    assert broker.queue_length(q) == 2
    rest = broker.fetch([q], 2, timeout=2)
    assert ids(rest) == ["m2", "m3"]
    broker.ack(rest)


def test_an_ack_sent_again_after_it_applied_touches_no_other_entry(make_broker: MakeBroker) -> None:
    broker = make_broker()
    q = "q-" + uuid.uuid4().hex[:8]
    broker.publish_many([Publication(q, envelope(f"m{i}")) for i in range(4)])
    first = broker.fetch([q], 2, timeout=2)
    # Given acks that applied, though the caller could not know it (sent again)
    broker.ack(first)
    acks = list(first)
    second = broker.fetch_acking(acks, [q], 2, timeout=2)
    # Then the second batch is claimed and untouched by them
    assert ids(second) == ["m2", "m3"] and acks == []
    assert broker.queue_length(q) == 2
    broker.ack(second)


def test_an_ack_carried_by_a_former_owner_leaves_the_new_owners_delivery(make_broker: MakeBroker) -> None:
    stalled, other = make_broker(recovery_time=0.5), make_broker(recovery_time=0.5)
    q = "q-" + uuid.uuid4().hex[:8]
    stalled.publish_many([Publication(q, envelope("a")), Publication(q, envelope("b"))])
    # Given a worker that stalled past the claim timeout, whose claims another worker took over
    old = stalled.fetch([q], 2, timeout=2)
    taken = other.fetch([q], 2, timeout=5)
    assert sorted(ids(taken)) == ["a", "b"]
    # When the stalled worker's next fetch carries their acks
    acks = list(old)
    assert stalled.fetch_acking(acks, [q], 2, timeout=0.2) == []
    # Then both still run on the new owner
    assert acks == [] and stalled.queue_length(q) == 2
    other.ack(taken)
    assert other.queue_length(q) == 0
