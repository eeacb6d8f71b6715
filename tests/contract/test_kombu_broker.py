"""kombu+memory:// and kombu+redis://: the part of the broker contract kombu keeps, plus
what is kombu's own (docs/kombu.md).

kombu brokers cannot join the full contract suite (conftest.BROKERS): kombu has no claim
that expires and comes back counted while the process lives (Redis restores only after
``visibility_timeout``, memory never), its memory transport has no priorities, and it
stores a priority on every message (a message sent without one comes back with 0).
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import redis

from taskq.brokers.kombu import KombuBroker
from taskq.config import Settings
from taskq.envelope import Envelope

# Imported tests are collected here and run with this module's ``broker`` fixture.
from tests.contract.test_broker_contract import (  # noqa: F401
    envelope,
    queue_name,
    test_batch_fetch_claims_up_to_max_count,
    test_close_then_use_again_reconnects,
    test_dead_letters_keep_the_reason_and_can_be_requeued,
    test_delayed_message_waits_in_the_broker,
    test_extended_claim_is_not_redelivered,
    test_fetch_from_several_queues,
    test_fetch_on_empty_queue_returns_nothing_after_timeout,
    test_past_eta_is_ready_now,
    test_purge_removes_waiting_messages,
    test_requeue_returns_at_once_without_counting,
    test_round_trip_keeps_headers_body_and_properties,
)
from tests.contract.test_signed_round_trip import (  # noqa: F401
    test_signed_message_verifies_after_the_broker_round_trip,
)
from tests.servers import REDIS_URL, require_redis


def _memory(settings: Settings) -> tuple[KombuBroker, Callable[[], None]]:
    broker = KombuBroker("kombu+memory://", settings)
    return broker, broker.close


def _redis(settings: Settings) -> tuple[KombuBroker, Callable[[], None]]:
    url = require_redis()
    prefix = f"taskq-kombu-{uuid.uuid4().hex[:10]}:"
    settings.broker_transport_options = {"global_keyprefix": prefix}
    broker = KombuBroker("kombu+" + url, settings)

    def cleanup() -> None:
        broker.close()
        client = redis.Redis.from_url(url)
        keys = list(client.scan_iter(match=prefix + "*"))
        if keys:
            client.delete(*keys)

    return broker, cleanup


FACTORIES = {"kombu-memory": _memory, "kombu-redis": _redis}


@pytest.fixture(params=sorted(FACTORIES))
def broker(request: pytest.FixtureRequest, settings: Settings) -> Iterator[KombuBroker]:
    instance, cleanup = FACTORIES[request.param](settings)
    try:
        yield instance
    finally:
        cleanup()


@pytest.fixture
def redis_broker(settings: Settings) -> Iterator[KombuBroker]:
    instance, cleanup = _redis(settings)
    try:
        yield instance
    finally:
        cleanup()


def test_binary_body_survives(broker: KombuBroker) -> None:
    q = queue_name()
    sent = Envelope({"id": "b", "task": "t"}, bytes(range(256)), "application/x-msgpack", "binary", {})
    broker.publish(q, sent)
    [got] = broker.fetch([q], 1, timeout=2)
    assert got.envelope is not None
    assert (got.envelope.headers, got.envelope.body, got.envelope.content_type) == (
        sent.headers,
        sent.body,
        sent.content_type,
    )
    broker.ack([got])


def test_redis_priorities_are_translated_nine_first(redis_broker: KombuBroker) -> None:
    q = queue_name()
    for i, prio in enumerate([0, 9, 5, 9, 0]):
        redis_broker.publish(q, envelope(f"m{i}", prio))
    got: list[tuple[str, int]] = []
    while len(got) < 5:
        batch = redis_broker.fetch([q], 1, timeout=2)
        assert batch and batch[0].envelope is not None
        got.append((batch[0].envelope.id, batch[0].envelope.priority))
        redis_broker.ack(batch)
    assert got == [("m1", 9), ("m3", 9), ("m2", 5), ("m0", 0), ("m4", 0)]


def test_messages_sit_in_redis_as_celerys_transport_leaves_them(redis_broker: KombuBroker) -> None:
    q = queue_name()
    redis_broker.publish(q, envelope("celery-shaped", priority=9))
    prefix = redis_broker.transport_options["global_keyprefix"]
    client = redis.Redis.from_url(REDIS_URL)
    [raw] = client.lrange(prefix + q, 0, -1)  # priority 9 = kombu 0: the bare list, polled first
    doc = json.loads(raw)
    assert set(doc) >= {"body", "content-encoding", "content-type", "headers", "properties"}
    assert doc["headers"]["id"] == "celery-shaped" and doc["properties"]["priority"] == 0
    assert doc["properties"]["body_encoding"] == "base64"
    assert doc["properties"]["delivery_info"] == {"exchange": "", "routing_key": q}
    assert redis_broker.purge(q) == 1


def test_a_delayed_message_is_held_claimed_in_the_fetching_process(broker: KombuBroker) -> None:
    # kombu's semantics (as in Celery): the message leaves the queue at once and waits in the worker
    q = queue_name()
    broker.publish(q, envelope("soon"), eta=time.time() + 0.5)
    assert broker.fetch([q], 1, timeout=0.2) == []
    assert broker.queue_length(q) == 1  # held locally, counted
    [d] = broker.fetch([q], 1, timeout=3)
    assert d.envelope is not None and d.envelope.id == "soon" and "x-taskq-eta" not in d.envelope.headers
    broker.ack([d])


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    s = Settings()
    s.recovery_time = 1.0
    return s
