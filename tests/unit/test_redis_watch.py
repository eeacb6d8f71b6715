"""An idle Redis fetcher over many queues (taskq/brokers/redis/watch.py): what it costs Redis,
and that everything a rescan used to find still reaches it on time: a delayed message, a new
priority lane, a dead worker's claim, a stop."""

from __future__ import annotations

import os
import signal
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import redis

from taskq.brokers.base import Delivery, Publication
from taskq.brokers.redis import RedisBroker
from taskq.config import Settings
from taskq.envelope import Envelope
from tests.contract.redis_factories import ThrowawayRedis, delete_prefixed, unique_prefix
from tests.forking import claim_then_die
from tests.servers import require_redis

MakeBroker = Callable[..., RedisBroker]


def envelope(priority: int = 0) -> Envelope:
    task_id = uuid.uuid4().hex
    return Envelope({"task": "t.noop", "id": task_id, "lang": "py"}, b"[[], {}, {}]", properties={"priority": priority})


def brokers(url: str, prefix: str, made: list[RedisBroker]) -> MakeBroker:
    def make(recovery_time: float = 30.0, **options: Any) -> RedisBroker:
        settings = Settings()
        settings.recovery_time = recovery_time
        settings.broker_transport_options = {"global_keyprefix": prefix, **options}
        made.append(RedisBroker(url, settings))
        return made[-1]

    return make


@pytest.fixture
def make_broker() -> Iterator[MakeBroker]:
    url, prefix, made = require_redis(), unique_prefix(), []
    yield brokers(url, prefix, made)
    for broker in made:
        broker.close()
    delete_prefixed(url, prefix)


@pytest.fixture
def private(tmp_path: Path) -> Iterator[tuple[ThrowawayRedis, MakeBroker]]:
    """A redis-server of this test's own: INFO commandstats counts the whole server."""
    server = ThrowawayRedis(tmp_path)
    server.start()
    made: list[RedisBroker] = []
    try:
        yield server, brokers(server.url, "taskq:", made)
    finally:
        for broker in made:
            broker.close()
        server.stop()


def names(count: int) -> list[str]:
    return [f"wq{i}" for i in range(count)]


def fetch_until(broker: RedisBroker, queues: list[str], timeout: float) -> tuple[list[Delivery], float]:
    """Fetch (as the worker does, with the broker's own idle timeout) until something comes;
    returns it and when (time.time())."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        got = broker.fetch(queues, 1, min(broker.fetch_timeout(queues, 1.0), deadline - time.monotonic()))
        if got:
            return got, time.time()
    return [], time.time()


def go_idle(broker: RedisBroker, queues: list[str]) -> None:
    """A first fetch: the full scan that finds nothing and starts the watch."""
    assert broker.fetch(queues, 1, 0.05) == []
    assert broker._local.watch is not None


def calls(client: redis.Redis) -> int:
    return sum(int(v["calls"]) for v in client.info("commandstats").values())


def test_an_idle_fetcher_on_2000_queues_costs_redis_one_command_per_wait(
    private: tuple[ThrowawayRedis, MakeBroker],
) -> None:
    server, make = private
    broker, queues = make(idle_block=2.0), names(2000)
    go_idle(broker, queues)
    assert broker.fetch_timeout(queues, 1.0) == 2.0
    counter = redis.Redis.from_url(server.url)
    before = calls(counter)
    started = time.monotonic()
    for _ in range(3):
        assert broker.fetch(queues, 1, broker.fetch_timeout(queues, 1.0)) == []
    spent = time.monotonic() - started
    used = calls(counter) - before - 1  # - the INFO of `before`
    counter.close()
    assert spent >= 5.5  # three waits of 2 s: nothing ended them early
    assert used <= 3, f"{used} commands for three idle waits (a rescan of 2,000 queues is ~8,000)"


def test_fair_queues_taking_turns_keep_the_watch(private: tuple[ThrowawayRedis, MakeBroker]) -> None:
    server, make = private
    broker, queues = make(idle_block=1.0, fair_queues=True), names(500)
    go_idle(broker, queues)
    counter = redis.Redis.from_url(server.url)
    before = calls(counter)
    for _ in range(3):  # each fetch starts with another queue: still no rescan
        assert broker.fetch(queues, 1, 0.3) == []
    used = calls(counter) - before - 1
    counter.close()
    assert used <= 3, f"{used} commands for three idle fetches"


def test_a_delayed_message_on_queue_9000_of_10000_runs_on_time(make_broker: MakeBroker) -> None:
    broker, producer, queues = make_broker(), make_broker(), names(10000)
    go_idle(broker, queues)
    eta = time.time() + 2.0
    producer.publish(queues[9000], envelope(), eta=eta)
    got, at = fetch_until(broker, queues, 15)
    assert [d.queue for d in got] == [queues[9000]]
    assert eta <= at <= eta + 1.0, f"ran {at - eta:+.2f}s from its eta"


def test_a_new_priority_lane_published_while_the_fetcher_waits_is_read_at_once(make_broker: MakeBroker) -> None:
    broker, producer, queues = make_broker(), make_broker(), names(100)
    go_idle(broker, queues)
    done: list[tuple[list[Delivery], float]] = []
    waiter = threading.Thread(target=lambda: done.append(fetch_until(broker, queues, 15)))
    waiter.start()
    time.sleep(0.5)  # the fetcher waits (up to idle_block, 10 s) on lane 0 of each queue
    sent = time.time()
    producer.publish_many([Publication(queues[77], envelope(priority=7))])  # lane 7: new to the queue
    waiter.join(20)
    got, at = done[0]
    assert [(d.queue, d.tag[0].rsplit(":", 1)[1]) for d in got] == [(queues[77], "7")]
    assert at - sent < 1.0, f"read {at - sent:.2f}s after it was sent"


def test_a_claim_of_a_worker_killed_right_after_its_blocking_read_returns_within_the_recovery_time(
    make_broker: MakeBroker,
) -> None:
    """The child claims in XREADGROUP BLOCK (a few queues), outside any script, and is
    SIGKILLed the moment the reply is in; the idle watcher over 100 queues takes it back."""
    watcher, producer, queues = make_broker(recovery_time=2.0), make_broker(), names(100)
    go_idle(watcher, queues)
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the doomed worker: blocks on one queue, claims, tells, waits to die
        try:
            child = make_broker(recovery_time=2.0)
            got: list[Delivery] = []
            while not got:
                got = child.fetch([queues[42]], 1, 5.0)
            os.write(write, b"claimed")
            time.sleep(60)
        finally:
            os._exit(0)
    os.close(write)
    time.sleep(0.5)  # the child is in its blocking read
    producer.publish(queues[42], envelope())
    assert os.read(read, 16) == b"claimed"
    os.kill(pid, signal.SIGKILL)
    os.waitpid(pid, 0)
    killed = time.time()
    got, at = fetch_until(watcher, queues, 10)
    assert [(d.queue, d.redeliveries) for d in got] == [(queues[42], 1)]
    assert at - killed <= 2.0 + 0.5, f"recovered {at - killed:.2f}s after the kill (recovery time 2 s)"


def test_a_watcher_that_starts_after_a_claim_still_recovers_it_within_the_recovery_time(
    make_broker: MakeBroker,
) -> None:
    """The claim is indexed (not yet due) when the watcher's first round runs: the watcher
    must learn its due time from the index, not wait a whole claim timeout from its round."""
    watcher, producer, queues = make_broker(recovery_time=2.0), make_broker(), names(100)
    producer.publish(queues[10], envelope())
    # claims in the fetch script, then dies at once
    claimed = claim_then_die(lambda: bool(make_broker(recovery_time=2.0).fetch([queues[10]], 1, 5.0)))
    time.sleep(1.2)  # due at claimed + 1.8 s; the watcher's round comes before that
    watcher._swept.update(queues)  # a process that swept before (the sweep would see the claim)
    got, at = fetch_until(watcher, queues, 10)
    assert [(d.queue, d.redeliveries) for d in got] == [(queues[10], 1)]
    assert at - claimed <= 2.0 + 0.5, f"recovered {at - claimed:.2f}s after the claim (recovery time 2 s)"


def test_a_stop_ends_an_idle_wait_at_once_and_later_waits_are_short(make_broker: MakeBroker) -> None:
    broker, queues = make_broker(), names(100)
    go_idle(broker, queues)
    threading.Timer(0.5, broker.interrupt_fetch).start()
    started = time.monotonic()
    assert broker.fetch(queues, 1, broker.fetch_timeout(queues, 1.0)) == []
    assert time.monotonic() - started < 2.0
    assert broker.fetch_timeout(queues, 1.0) == 1.0  # stopping: the usual bound again


def test_the_claims_index_holds_a_queue_while_it_holds_claims(make_broker: MakeBroker) -> None:
    broker, producer, queues = make_broker(recovery_time=30.0), make_broker(), names(40)
    index = broker.claims_key(queues[0])
    producer.publish(queues[3], envelope())
    got, _ = fetch_until(broker, queues, 5)
    lane = broker.lane_key(queues[3], 0)
    assert len(got) == 1 and broker.client.zscore(index, lane) is not None
    assert producer.extend_owner(broker.claim_owner, queues) == 1  # found through the index
    broker.client.zadd(index, {lane: 0})  # due now: a look finds the claim alive and keeps the lane
    assert broker.fetch(queues, 1, 0.05) == []
    assert (broker.client.zscore(index, lane) or 0) > time.time() + 1  # next look: recovery_check on
    broker.ack(got)  # the lane's last claim: the index lets it go at once
    assert broker.client.zscore(index, lane) is None
    assert producer.extend_owner(broker.claim_owner, queues) == 0


def test_an_ack_while_another_worker_blocks_on_the_lane_keeps_its_coming_claim_indexed(
    make_broker: MakeBroker,
) -> None:
    """A worker on one queue claims in XREADGROUP BLOCK, outside any script, trusting the
    mark its scan put in the claims index. Another worker acks the lane's last claim while
    that read waits: the lane must stay indexed, or the claim the read then takes is neither
    extended for its live owner nor recovered after its owner dies."""
    watcher, producer, queues = make_broker(recovery_time=5.0), make_broker(), names(40)
    reader = make_broker(recovery_time=5.0)  # recovery_check 0.5: its blocking read waits <= 0.5 s
    go_idle(watcher, queues)
    producer.publish(queues[5], envelope())
    first, _ = fetch_until(watcher, queues, 5)
    assert len(first) == 1
    done: list[list[Delivery]] = []
    thread = threading.Thread(target=lambda: done.append(reader.fetch([queues[5]], 1, 0.5)))
    thread.start()
    time.sleep(0.2)  # the reader scanned (nothing new) and waits in XREADGROUP BLOCK
    watcher.ack(first)  # the lane's last claim settles while the reader waits on it
    producer.publish(queues[5], envelope())
    thread.join()
    assert len(done[0]) == 1, "the blocking read should have claimed the second message"
    claimed = time.time()
    # Alive: its keeper (extend_owner, through the index) must find the claim.
    assert producer.extend_owner(reader.claim_owner, [queues[5]]) == 1
    # Then the reader dies (it never acks nor extends again): the watcher takes the claim back.
    got, at = fetch_until(watcher, queues, 12)
    assert [(d.queue, d.redeliveries) for d in got] == [(queues[5], 1)]
    assert at - claimed <= 5.0 + 1.0, f"recovered {at - claimed:.2f}s after the claim (recovery time 5 s)"


def test_a_thousand_orphaned_lanes_in_the_claims_index_do_not_hide_a_consumed_queues_claim(
    make_broker: MakeBroker,
) -> None:
    """A worker on 1,000 tenant queues died holding a claim on each, and nobody consumes
    those queues any more: their lanes stay due in the (shared) index. A claim of a dead
    worker on a queue that is consumed must still come back within the recovery time."""
    producer, orphans = make_broker(), [f"gone{i}" for i in range(1000)]
    producer.publish_many([Publication(q, envelope()) for q in orphans])
    dead = make_broker(recovery_time=2.0)
    held = 0
    for start in range(0, len(orphans), 32):
        held += len(dead.fetch(orphans[start : start + 32], 32, 0))
    assert held == 1000
    live = make_broker(recovery_time=2.0)
    assert live.fetch(["kept"], 1, 0) == []  # its first look (the sweep) is done
    producer.publish("kept", envelope())
    doomed = make_broker(recovery_time=2.0)
    assert len(doomed.fetch(["kept"], 1, 1.0)) == 1  # then it dies
    claimed = time.time()
    got: list[Delivery] = []
    while not got and time.time() - claimed < 8:
        got = live.fetch(["kept"], 1, 1.0)
    at = time.time()
    assert [(d.queue, d.redeliveries) for d in got] == [("kept", 1)]
    assert at - claimed <= 2.0 + 0.5, f"recovered {at - claimed:.2f}s after the claim (recovery time 2 s)"
