"""Big messages on Redis are claimed by a plain XREADGROUP that follows the fetch script in one
pipeline (the script only does its housekeeping and marks the lanes in the claims index): each
still comes once, highest priority first, with the same redelivery count, and a claim taken
that way is extended for a live owner and recovered after its owner dies."""

from __future__ import annotations

import time
import uuid
from pathlib import Path
from typing import Any

import pytest

from taskq.brokers.base import Delivery
from taskq.brokers.redis import GROUP, RedisBroker
from taskq.brokers.redis.broker import BIG_MESSAGE
from taskq.envelope import Envelope
from tests.contract.redis_factories import ThrowawayRedis
from tests.forking import claim_then_die
from tests.unit.test_redis_broker import MakeBroker, pipeline_sizes
from tests.unit.test_redis_broker import make_broker as make_broker  # the fixture
from tests.unit.test_redis_watch import brokers


def big(priority: int = 0, size: int = BIG_MESSAGE + 1024) -> Envelope:
    task_id = uuid.uuid4().hex
    body = b'[["' + b"x" * size + b'"], {}, {}]'
    return Envelope({"task": "t.noop", "id": task_id, "lang": "py"}, body, properties={"priority": priority})


def learn(broker: RedisBroker, queue: str, producer: RedisBroker) -> None:
    """A first fetch (fetch script) sees a big message: the next fetches take the plain read."""
    producer.publish(queue, big())
    got = broker.fetch([queue], 1, 1.0)
    assert len(got) == 1
    broker.ack(got)
    assert broker._big.get((queue,)), "a big message should switch the queue to the plain read"


def test_big_messages_come_once_each_highest_priority_first_through_the_plain_read(
    make_broker: MakeBroker, monkeypatch: pytest.MonkeyPatch
) -> None:
    broker, producer, queue = make_broker(), make_broker(), "bigq"
    # The lanes the plain read covers are those the previous answer named: publish to each first.
    for priority in (0, 5, 9):
        producer.publish(queue, big(priority))
    assert len(broker.fetch([queue], 10, 1.0)) == 3
    sent: list[tuple[int, str]] = []
    for i in range(12):
        env = big(priority=(0, 9, 5)[i % 3])
        producer.publish(queue, env)
        sent.append((env.properties["priority"], env.id))
    sizes = pipeline_sizes(monkeypatch)
    got: list[Delivery] = []
    while len(got) < 12:
        batch = broker.fetch([queue], 2, 1.0)  # two of three lanes answer more: surplus goes back
        assert batch
        got += batch
        broker.ack(batch)
    assert 2 in sizes, "the fetches should have run the script and the read in one pipeline"
    assert sorted(d.envelope.id for d in got if d.envelope) == sorted(i for _, i in sent)
    priorities = [d.envelope.properties["priority"] for d in got if d.envelope]
    assert priorities == sorted(priorities, reverse=True)
    assert broker.fetch([queue], 2, 0.05) == []


@pytest.mark.parametrize("size", [100, BIG_MESSAGE + 1024])
def test_redeliveries_count_alike_through_the_script_and_the_plain_read(make_broker: MakeBroker, size: int) -> None:
    """An abandoned claim is taken over (1 redelivery); given back by requeue, it is read again
    (by the plain read for big messages) still counting 1; a first delivery counts 0."""
    broker, other, queue = make_broker(), make_broker(), f"bigr{size}"
    learn(broker, queue, other)
    learn(other, queue, broker)
    if size < BIG_MESSAGE:  # small: both stay on the fetch script
        broker._big.clear()
        other._big.clear()
    broker.publish(queue, big(size=size))
    first = broker.fetch([queue], 1, 1.0)
    assert [d.redeliveries for d in first] == [0]
    broker.abandon(first)
    taken = other.fetch([queue], 1, 1.0)
    assert [d.redeliveries for d in taken] == [1]
    other.requeue(taken)
    again = other.fetch([queue], 1, 1.0)
    assert [(d.envelope.id if d.envelope else None, d.redeliveries) for d in again] == [
        (first[0].envelope.id if first[0].envelope else None, 1)
    ]
    assert bool(other._big.get((queue,))) == (size >= BIG_MESSAGE)


def test_a_plain_read_claim_is_indexed_and_extended_for_its_live_owner(make_broker: MakeBroker) -> None:
    broker, keeper, queue = make_broker(recovery_time=30.0), make_broker(), "bige"
    learn(broker, queue, keeper)
    lane = broker.lane_key(queue, 0)
    assert broker.client.zscore(broker.claims_key(queue), lane) is None  # the ack settled it
    keeper.publish(queue, big())
    keeper.publish(queue, big())
    got = broker.fetch([queue], 2, 1.0)
    assert len(got) == 2
    assert broker.client.zscore(broker.claims_key(queue), lane) is not None
    assert keeper.extend_owner(broker.claim_owner, [queue]) == 2


def test_big_message_claims_of_a_killed_worker_return_within_the_recovery_time(make_broker: MakeBroker) -> None:
    """The child claims big messages in the plain read and is SIGKILLed; nothing but the mark
    the script put in the claims index tells the other worker where to look."""
    survivor, producer, queue = make_broker(recovery_time=2.0), make_broker(), "bigk"
    # A watcher over many queues marks nothing itself (watch.py): it finds the claims only
    # through the index.
    queues = [queue, *(f"bigk{i}" for i in range(99))]

    def claim_two_big() -> bool:
        child = make_broker(recovery_time=2.0)
        learn(child, queue, producer)
        producer.publish(queue, big())
        producer.publish(queue, big())
        return len(child.fetch([queue], 2, 1.0)) == 2

    claimed = claim_then_die(claim_two_big)
    survivor._swept.update(queues)  # a process that swept before: only the index shows the claims
    got: list[Any] = []
    deadline = time.monotonic() + 10
    while len(got) < 2 and time.monotonic() < deadline:
        got += survivor.fetch(queues, 2, survivor.fetch_timeout(queues, 0.5))
    at = time.time()
    assert [d.redeliveries for d in got] == [1, 1]
    assert at - claimed <= 2.0 + 0.5, f"recovered {at - claimed:.2f}s after the claim (recovery time 2 s)"


def test_small_messages_keep_the_fetch_script(make_broker: MakeBroker, monkeypatch: pytest.MonkeyPatch) -> None:
    broker, producer, queue = make_broker(), make_broker(), "bigs"
    learn(broker, queue, producer)
    producer.publish(queue, big(size=100))
    assert len(broker.fetch([queue], 1, 1.0)) == 1  # read plainly, and small: back to the script
    assert not broker._big.get((queue,))
    producer.publish(queue, big(size=100))
    sizes = pipeline_sizes(monkeypatch)
    assert len(broker.fetch([queue], 1, 1.0)) == 1
    assert 2 not in sizes


def test_a_server_that_lost_its_scripts_claims_nothing_unmarked(tmp_path: Path) -> None:
    """After SCRIPT FLUSH (a restarted server) the pipelined EVALSHA fails while the read
    after it still claims: that claim goes back, and the fetch loads the script and delivers
    the message once, as a first delivery."""
    server = ThrowawayRedis(tmp_path)
    server.start()
    made: list[RedisBroker] = []
    try:
        make = brokers(server.url, "taskq:", made)
        broker, producer, queue = make(), make(), "bign"
        learn(broker, queue, producer)
        sent = big()
        producer.publish(queue, sent)
        broker.client.script_flush()
        got = broker.fetch([queue], 1, 1.0)
        assert [(d.envelope.id if d.envelope else None, d.redeliveries) for d in got] == [(sent.id, 0)]
        assert broker.client.xpending(broker.lane_key(queue, 0), GROUP)["pending"] == 1  # only that one
        broker.ack(got)
        assert broker.fetch([queue], 1, 0.05) == []
    finally:
        for broker in made:
            broker.close()
        server.stop()


def test_a_lane_key_that_is_not_a_stream_does_not_stop_big_fetches(make_broker: MakeBroker) -> None:
    """A foreign write on a lane key fails the plain read (the script skips such a lane): the
    fetch still returns, and the messages of the other lanes come, each once."""
    broker, producer, queue = make_broker(), make_broker(), "bigf"
    producer.publish(queue, big(priority=9))
    producer.publish(queue, big(priority=0))
    assert len(broker.fetch([queue], 10, 1.0)) == 2  # both lanes in the previous answer
    assert broker._big.get((queue,))
    broker.client.delete(broker.lane_key(queue, 0))
    broker.client.set(broker.lane_key(queue, 0), "not a stream")
    sent = [big(priority=9) for _ in range(3)]
    for env in sent:
        producer.publish(queue, env)
    got: list[Delivery] = []
    for _ in range(6):  # a failed plain read returns nothing new: a fetch later takes it
        got += broker.fetch([queue], 1, 0.2)
        if len(got) == 3:
            break
    assert sorted(d.envelope.id for d in got if d.envelope) == sorted(env.id for env in sent)
    broker.client.delete(broker.lane_key(queue, 0))
