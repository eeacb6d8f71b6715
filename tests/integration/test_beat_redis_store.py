"""The Redis schedule store against the real server: owner-checked lock renewal, the
per-instant claim, pub/sub wake-ups, and claim+enqueue in one MULTI/EXEC when the broker
can add its publish commands to a pipeline."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterator, Sequence
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest
import redis

from taskq.beat.core.entry import Entry, EntryState
from taskq.beat.core.schedules import every
from taskq.beat.core.stores.base import ClaimResult
from taskq.beat.core.stores.redis import RedisScheduleStore, split_prefix
from taskq.brokers.base import Publication
from taskq.envelope import Envelope
from tests.servers import require_redis

T0 = datetime(2026, 3, 2, 12, 0, tzinfo=timezone.utc)


class PipelineBroker:
    """A broker that can add its publish commands to a caller's MULTI pipeline."""

    def __init__(self, url: str, key: str) -> None:
        self.url = url
        self.key = key

    def add_to_pipeline(self, pipe: Any, items: Sequence[Publication]) -> None:
        for item in items:
            pipe.rpush(self.key, item.envelope.to_bytes())


@pytest.fixture
def prefix() -> Iterator[str]:
    url = require_redis()
    value = f"taskq-beat-store-{uuid.uuid4().hex[:10]}:"
    yield value
    client = redis.Redis.from_url(url)
    keys = list(client.scan_iter(match=value + "*"))
    if keys:
        client.delete(*keys)
    client.close()


def make_store(prefix: str, broker: Any = None) -> RedisScheduleStore:
    return RedisScheduleStore(f"{require_redis()}?prefix={prefix}", broker)


def entry(entry_id: str = "e", next_run: datetime | None = T0) -> Entry:
    return Entry(entry_id, "t.task", every(seconds=1), start_date=T0 - timedelta(seconds=1),
                 state=EntryState(next_run_time=next_run))


def test_prefix_is_taken_off_the_url() -> None:
    assert split_prefix("redis://h:1/2?prefix=p:&x=1") == ("redis://h:1/2?x=1", "p:")
    assert split_prefix("redis://h/0")[1] == "taskq:beat:"


def test_lock_is_renewed_only_by_its_owner(prefix: str) -> None:
    store = make_store(prefix)
    assert store.acquire_lock("a", 0.5)
    assert not store.acquire_lock("b", 0.5)
    assert store.acquire_lock("a", 0.5)  # renewal: compare-and-extend
    assert store.lock_owner() == "a"
    store.release_lock("b")  # not b's: stays
    assert store.lock_owner() == "a"
    deadline = time.monotonic() + 5
    while store.lock_owner() is not None and time.monotonic() < deadline:
        time.sleep(0.05)
    assert store.acquire_lock("b", 5)  # expired: b takes it
    assert not store.acquire_lock("a", 5)  # a's renewal fails: owner checked every time
    store.release_lock("b")
    assert store.lock_owner() is None


def test_entries_round_trip_and_changes_bump_the_revision(prefix: str) -> None:
    store = make_store(prefix)
    before = store.revision()
    assert store.add(entry())
    assert not store.add(entry())
    assert store.revision() > before
    got = store.get("e")
    assert got is not None and got.same_definition(entry()) and got.next_run_time == T0
    assert store.set_definition(entry().copy(paused=True))
    assert store.get("e").paused  # type: ignore[union-attr]
    assert store.get("e").next_run_time == T0  # type: ignore[union-attr]  # state untouched
    assert store.set_state("e", EntryState(next_run_time=T0 + timedelta(seconds=5)))
    assert [e.id for e in store.entries()] == ["e"]
    assert store.remove("e") and not store.remove("e") and store.get("e") is None


def test_claim_once_per_instant_and_only_by_the_leader(prefix: str) -> None:
    store = make_store(prefix)
    store.add(entry())
    advanced = EntryState(next_run_time=T0 + timedelta(seconds=1), last_run_time=T0)
    assert store.claim("a", "e", T0, T0, advanced, []) is ClaimResult.NOT_LEADER
    assert store.acquire_lock("a", 5)
    assert store.claim("a", "e", T0, T0 + timedelta(seconds=9), advanced, []) is ClaimResult.STALE
    assert store.claim("a", "e", T0, T0, advanced, []) is ClaimResult.CLAIMED
    assert store.claim("a", "e", T0, T0, advanced, []) is ClaimResult.TAKEN
    assert store.get("e").state.last_run_time == T0  # type: ignore[union-attr]
    assert store.claim("a", "gone", T0, T0, advanced, []) is ClaimResult.STALE


def test_a_claim_to_publish_afterwards_stays_unsent_until_marked(prefix: str) -> None:
    store = make_store(prefix)
    store.add(entry())
    store.acquire_lock("a", 5)
    advanced = EntryState(next_run_time=T0 + timedelta(seconds=1), last_run_time=T0)
    assert store.claim("a", "e", T0, T0, advanced, [], will_publish=True) is ClaimResult.CLAIMED
    assert store.unsent_claim("e", T0)
    store.mark_sent("e", T0)
    assert not store.unsent_claim("e", T0)
    assert not store.unsent_claim("e", T0 + timedelta(seconds=1))  # never claimed


def test_claim_and_enqueue_in_one_transaction(prefix: str) -> None:
    url = require_redis()
    queue_key = prefix + "queue"
    store = make_store(prefix, PipelineBroker(url, queue_key))
    assert store.enqueues_atomically
    store.add(entry())
    client = redis.Redis.from_url(url)
    publication = Publication("q", Envelope(headers={"id": "x"}, body=b"[]"))
    advanced = EntryState(next_run_time=T0 + timedelta(seconds=1), last_run_time=T0)
    # Not the leader: neither claimed nor enqueued
    assert store.claim("a", "e", T0, T0, advanced, [publication]) is ClaimResult.NOT_LEADER
    assert client.llen(queue_key) == 0
    store.acquire_lock("a", 5)
    assert store.claim("a", "e", T0, T0, advanced, [publication]) is ClaimResult.CLAIMED
    assert client.llen(queue_key) == 1
    # The same instant again: nothing more enqueued
    assert store.claim("a", "e", T0, T0, advanced, [publication]) is ClaimResult.TAKEN
    assert client.llen(queue_key) == 1
    client.close()


def test_a_broker_on_another_server_is_not_used_in_the_claim(prefix: str) -> None:
    store = make_store(prefix, PipelineBroker("redis://127.0.0.1:6379/7", "k"))
    assert not store.enqueues_atomically


def test_a_change_wakes_a_waiting_beat_at_once(prefix: str) -> None:
    store, writer = make_store(prefix), make_store(prefix)
    stop = threading.Event()
    store.wait_for_change(0.01, stop)  # subscribe first
    timer = threading.Timer(0.2, lambda: writer.add(entry("new")))
    started = time.monotonic()
    timer.start()
    assert store.wait_for_change(5.0, stop)
    waited = time.monotonic() - started
    assert 0.15 < waited < 1.0
    assert not store.wait_for_change(0.1, stop)
