"""The Broker protocol's promises, run against every broker (see conftest.BROKERS)."""

from __future__ import annotations

import time
import uuid

from taskq.brokers.base import Broker, Delivery, Publication
from taskq.envelope import Envelope


def envelope(task_id: str | None = None, priority: int = 0, body: bytes = b"[[], {}, {}]") -> Envelope:
    task_id = task_id or uuid.uuid4().hex
    return Envelope(
        headers={"task": "t.noop", "id": task_id, "lang": "py"},
        body=body,
        properties={"priority": priority, "correlation_id": task_id},
    )


def queue_name() -> str:
    return f"q-{uuid.uuid4().hex[:10]}"


def test_round_trip_keeps_headers_body_and_properties(broker: Broker) -> None:
    q = queue_name()
    sent = envelope(body='[["é", 1], {"k": null}, {}]'.encode())
    broker.publish(q, sent)
    [got] = broker.fetch([q], 10, timeout=2)
    assert got.envelope == sent
    assert got.queue == q and got.redeliveries == 0
    broker.ack([got])
    assert broker.queue_length(q) == 0


def test_binary_body_survives(broker: Broker) -> None:
    q = queue_name()
    sent = Envelope({"id": "b", "task": "t"}, bytes(range(256)), "application/x-msgpack", "binary", {})
    broker.publish(q, sent)
    [got] = broker.fetch([q], 1, timeout=2)
    assert got.envelope == sent
    broker.ack([got])


def test_fetch_on_empty_queue_returns_nothing_after_timeout(broker: Broker) -> None:
    start = time.monotonic()
    assert broker.fetch([queue_name()], 5, timeout=0.3) == []
    assert 0.25 <= time.monotonic() - start < 3


def test_higher_priority_first_then_oldest(broker: Broker) -> None:
    q = queue_name()
    for i, prio in enumerate([0, 9, 5, 9, 0]):
        broker.publish(q, envelope(f"m{i}", prio))
    got = []
    while len(got) < 5:
        batch = broker.fetch([q], 1, timeout=2)
        assert batch
        got.append(batch[0].envelope.id if batch[0].envelope else "")
        broker.ack(batch)
    assert got == ["m1", "m3", "m2", "m0", "m4"]


def fetch_exactly(broker: Broker, q: str, count: int, max_count: int) -> list[Delivery]:
    """Fetch until ``count`` deliveries, each call asked for at most ``max_count`` and given
    no more. A push broker (RabbitMQ) returns what its consumer holds once one message is
    there: on a loaded machine the rest of a batch may arrive for the next call."""
    got: list[Delivery] = []
    deadline = time.monotonic() + 5
    while len(got) < count and time.monotonic() < deadline:
        ask = min(max_count, count - len(got)) if len(got) else max_count
        batch = broker.fetch([q], ask, timeout=2)
        assert len(batch) <= ask
        got += batch
    assert len(got) == count
    return got


def test_batch_fetch_claims_up_to_max_count(broker: Broker) -> None:
    q = queue_name()
    broker.publish_many([Publication(q, envelope(f"m{i}")) for i in range(7)])
    first = fetch_exactly(broker, q, 5, 5)
    assert [d.envelope.id for d in first if d.envelope] == [f"m{i}" for i in range(5)]
    rest = fetch_exactly(broker, q, 2, 5)
    assert sorted(d.envelope.id for d in rest if d.envelope) == ["m5", "m6"]
    assert broker.fetch([q], 5, timeout=0.1) == []  # all claimed
    broker.ack(first + rest)
    assert broker.queue_length(q) == 0


def test_fetch_from_several_queues(broker: Broker) -> None:
    a, b = queue_name(), queue_name()
    broker.publish(a, envelope("in-a"))
    broker.publish(b, envelope("in-b"))
    got = broker.fetch([a, b], 10, timeout=2)
    got += broker.fetch([a, b], 10, timeout=0.5) if len(got) < 2 else []
    assert sorted(d.envelope.id for d in got if d.envelope) == ["in-a", "in-b"]
    assert {d.queue for d in got} == {a, b}
    broker.ack(got)


def test_unacked_claim_expires_and_counts_a_redelivery(broker: Broker) -> None:
    q = queue_name()
    broker.publish(q, envelope("lost"))
    broker.fetch([q], 1, timeout=2)
    assert broker.fetch([q], 1, timeout=0.2) == []  # held while the claim is fresh
    [again] = broker.fetch([q], 1, timeout=5)  # recovery_time is 1 s in these tests
    assert again.envelope is not None and again.envelope.id == "lost"
    assert again.redeliveries == 1
    broker.ack([again])
    assert broker.queue_length(q) == 0


def test_extended_claim_is_not_redelivered(broker: Broker) -> None:
    q = queue_name()
    broker.publish(q, envelope("long"))
    [held] = broker.fetch([q], 1, timeout=2)
    deadline = time.monotonic() + 2.5  # 2.5x the recovery time
    while time.monotonic() < deadline:
        broker.extend([held])
        assert broker.fetch([q], 1, timeout=0.3) == []
    broker.ack([held])
    assert broker.queue_length(q) == 0


def test_requeue_returns_at_once_without_counting(broker: Broker) -> None:
    q = queue_name()
    broker.publish(q, envelope("back"))
    [d] = broker.fetch([q], 1, timeout=2)
    broker.requeue([d])
    [again] = broker.fetch([q], 1, timeout=0.5)
    assert again.envelope is not None and again.envelope.id == "back"
    assert again.redeliveries == 0
    broker.ack([again])


def test_delayed_message_waits_in_the_broker(broker: Broker) -> None:
    q = queue_name()
    broker.publish(q, envelope("later"), eta=time.time() + 1.0)
    broker.publish(q, envelope("now"))
    [now] = broker.fetch([q], 10, timeout=2)
    assert now.envelope is not None and now.envelope.id == "now"
    broker.ack([now])
    assert broker.fetch([q], 10, timeout=0.3) == []
    assert broker.queue_length(q) == 1
    [later] = broker.fetch([q], 10, timeout=3)
    assert later.envelope is not None and later.envelope.id == "later"
    broker.ack([later])


def test_past_eta_is_ready_now(broker: Broker) -> None:
    q = queue_name()
    broker.publish_many([Publication(q, envelope("past"), eta=time.time() - 60)])
    [d] = broker.fetch([q], 1, timeout=2)
    broker.ack([d])


def test_dead_letters_keep_the_reason_and_can_be_requeued(broker: Broker) -> None:
    q = queue_name()
    broker.publish(q, envelope("poison"))
    [d] = broker.fetch([q], 1, timeout=2)
    broker.dead_letter(d, "unknown task t.noop")
    assert broker.queue_length(q) == 0
    [dead] = broker.dead_letters(q)
    assert (dead.id, dead.queue, dead.reason) == ("poison", q, "unknown task t.noop")
    assert broker.dead_letter_count(q) == 1 and broker.dead_letter_count(queue_name()) == 0
    assert q in broker.queues()
    assert broker.requeue_dead_letters(q, ["poison"]) == 1
    assert broker.dead_letters(q) == []
    [back] = broker.fetch([q], 1, timeout=2)
    assert back.envelope is not None and back.envelope.id == "poison"
    broker.dead_letter(back, "again")
    assert broker.purge_dead_letters(q) == 1
    assert broker.dead_letters(q) == []


def test_purge_removes_waiting_messages(broker: Broker) -> None:
    q = queue_name()
    broker.publish_many([Publication(q, envelope()) for _ in range(3)])
    assert broker.queue_length(q) == 3
    assert broker.purge(q) == 3
    assert broker.queue_length(q) == 0


def test_close_then_use_again_reconnects(broker: Broker) -> None:
    q = queue_name()
    broker.publish(q, envelope("x"))
    broker.close()
    [d] = broker.fetch([q], 1, timeout=2)
    broker.ack([d])
    broker.close()
