"""taskq on a Redis Cluster (3 masters + 3 replicas on loopback, started once for this module):
keys of a queue in one slot, queues spread over the shards, round trip through a worker with
results on the cluster, countdown, priorities, claims of a SIGKILLed worker.
The failover test (a master SIGKILLed mid-run) is in test_redis_failover.py."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from redis.cluster import ClusterNode, RedisCluster

from taskq import TaskQ, states
from taskq.beat.core.entry import Entry, EntryState
from taskq.beat.core.schedules import every
from taskq.beat.core.stores.base import ClaimResult
from taskq.beat.core.stores.redis import RedisScheduleStore
from taskq.brokers.redis import RedisBroker
from taskq.config import Settings
from taskq.envelope import Envelope
from taskq.errors import BrokerError
from tests.integration.workers import PROJECT, WorkerFactory, base_env, wait_until
from tests.redis_topology import ThrowawayCluster

pytestmark = [pytest.mark.redis, pytest.mark.slow]


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ThrowawayCluster]:
    server = ThrowawayCluster(tmp_path_factory.mktemp("cluster"))
    server.start()
    try:
        yield server
    finally:
        server.stop()


def envelope(task_id: str, priority: int = 0) -> Envelope:
    return Envelope({"task": "t.noop", "id": task_id, "lang": "py"}, b"[[], {}, {}]", properties={"priority": priority})


def broker(cluster: ThrowawayCluster) -> RedisBroker:
    settings = Settings()
    settings.recovery_time = 2.0
    return RedisBroker(cluster.url, settings)


def test_a_queues_keys_share_one_slot_and_queues_spread_over_the_shards(cluster: ThrowawayCluster) -> None:
    b = broker(cluster)
    client = cluster.client(cluster.ports[0])
    try:
        queues = [f"spread-{i}" for i in range(12)]  # fixed names: fixed slots (the cluster is this module's own)
        for q in queues:
            b.publish(q, envelope(f"{q}-now"))
            b.publish(q, envelope(f"{q}-late"), eta=time.time() + 60)
        # Every key a script of one queue touches hashes to the queue's slot...
        for q in queues:
            keys = [*b._fetch_keys(q), b._registry_for(q), b.wake_key(q)]
            assert len({client.cluster("keyslot", k) for k in keys}) == 1, q  # type: ignore[no-untyped-call]
        # ...and the queues are spread over the three masters.
        assert len({cluster.master_of(b.lane_key(q, 0)) for q in queues}) == 3
        assert set(queues) <= set(b.queues())
        assert all(b.queue_length(q) == 2 for q in queues)
        taken = b.fetch(queues, 100, timeout=1)
        assert {d.envelope.id for d in taken if d.envelope} == {f"{q}-now" for q in queues}
        b.ack(taken)
        assert sum(b.purge(q) for q in queues) == len(queues)  # the delayed ones
    finally:
        b.close()


def test_the_single_server_key_layout_is_unchanged() -> None:
    b = RedisBroker("redis://127.0.0.1:6379/0")
    assert (b.lane_key("celery", 3), b.delayed_key("celery"), b.registry_key) == (
        "taskq:q:celery:3", "taskq:q:celery:delayed", "taskq:queues",
    )
    assert b._registry_for("celery") == "taskq:queues"


def test_priorities_highest_first_within_and_across_queues(cluster: ThrowawayCluster) -> None:
    b = broker(cluster)
    try:
        first, second = f"prio-a-{uuid.uuid4().hex[:6]}", f"prio-b-{uuid.uuid4().hex[:6]}"
        b.publish_many([])
        for p in (0, 5, 9, 2):
            b.publish(first, envelope(f"a{p}", p))
            b.publish(second, envelope(f"b{p}", p))
        got: list[str] = []
        while len(got) < 8:
            batch = b.fetch([first], 2, timeout=1) if len(got) < 4 else b.fetch([second], 2, timeout=1)
            b.ack(batch)
            got += [d.envelope.id for d in batch if d.envelope]
        assert got == ["a9", "a5", "a2", "a0", "b9", "b5", "b2", "b0"]
        # One fetch over both queues: the batch is ordered by priority across them.
        for p in (1, 7):
            b.publish(first, envelope(f"a{p}", p))
            b.publish(second, envelope(f"b{p}", p))
        batch = b.fetch([first, second], 10, timeout=1)
        b.ack(batch)
        assert [d.envelope.id for d in batch if d.envelope] == ["a7", "b7", "a1", "b1"]
    finally:
        b.close()


def test_a_blocked_fetch_over_several_queues_wakes_for_any_of_them(cluster: ThrowawayCluster) -> None:
    b, producer = broker(cluster), broker(cluster)
    try:
        queues = [f"wake-{uuid.uuid4().hex[:6]}-{i}" for i in range(4)]
        assert b.fetch(queues, 10, timeout=0.2) == []  # makes the groups
        for q in queues:
            started = time.monotonic()
            producer.publish(q, envelope(q))
            batch = b.fetch(queues, 10, timeout=5)
            assert [d.envelope.id for d in batch if d.envelope] == [q]
            assert time.monotonic() - started < 1.0
            b.ack(batch)
        # A countdown: the blocked fetch wakes when the message is due.
        producer.publish(queues[2], envelope("due"), eta=time.time() + 0.5)
        started = time.monotonic()
        batch = b.fetch(queues, 10, timeout=5)
        assert [d.envelope.id for d in batch if d.envelope] == ["due"]
        assert 0.4 < time.monotonic() - started < 2.0
        b.ack(batch)
    finally:
        b.close()
        producer.close()


@pytest.fixture
def workers(cluster: ThrowawayCluster, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[WorkerFactory]:
    prefix = f"t{uuid.uuid4().hex[:6]}:"
    env = base_env(
        tmp_path,
        cluster.url,
        TASKQ_BROKER_TRANSPORT_OPTIONS=json.dumps({"global_keyprefix": prefix}),
        TASKQ_RESULT_KEY_PREFIX=f"{prefix}celery-task-meta-",
        TASKQ_BEAT_STORE_URL=f"sqlite:///{tmp_path}/beat.db",
    )
    for key, value in env.items():
        if key.startswith("TASKQ_"):
            monkeypatch.setenv(key, value)
    factory = WorkerFactory(tmp_path, env)
    try:
        yield factory
    finally:
        factory.close()


def test_round_trip_and_countdown_through_a_worker_with_results_on_the_cluster(
    cluster: ThrowawayCluster, workers: WorkerFactory
) -> None:
    workers.start("-c", "2", "-P", "threads")
    producer = TaskQ("producer")
    try:
        results = [producer.send_task("example_tasks.add", (i, i)) for i in range(20)]
        assert [r.get(timeout=20) for r in results] == [2 * i for i in range(20)]
        # Results keep Celery's key names on the cluster (no hash tag): celery-task-meta-<id>.
        store = RedisCluster(startup_nodes=[ClusterNode("127.0.0.1", cluster.ports[0])])  # type: ignore[no-untyped-call]
        try:
            prefix = workers.env["TASKQ_RESULT_KEY_PREFIX"]
            assert all(store.get(f"{prefix}{r.id}") for r in results)
        finally:
            store.close()
        sent = time.time()
        late = producer.send_task("example_tasks.stamp", ("late",), countdown=1.0)
        assert late.get(timeout=20) >= sent + 0.9
        assert late.state == states.SUCCESS
    finally:
        producer.close()


def test_claims_of_a_sigkilled_worker_run_elsewhere(workers: WorkerFactory) -> None:
    marks = workers.marks
    producer = TaskQ("producer")
    try:
        keys = [f"k{i}" for i in range(30)]
        results = producer.send_many("example_tasks.sleep_then", [((k, 0.1), {}) for k in keys])
        victim = workers.start("-c", "1", "--prefetch-multiplier", "30")  # its first fetch takes all
        wait_until(lambda: sum(marks.count("done").values()) >= 3, 20, "three tasks done")
        victim.kill_tree()
        workers.start("-c", "2")
        assert [r.get(timeout=60) for r in results] == keys
        assert set(marks.count("done")) == set(keys)
    finally:
        producer.close()


def test_a_cluster_url_without_a_reachable_node_is_one_clear_error() -> None:
    b = RedisBroker("redis+cluster://127.0.0.1:1", Settings())
    with pytest.raises(BrokerError, match="redis broker publish"):
        b.publish("q", envelope("x"))


def test_wait_replicas_confirms_on_the_replica_or_fails_the_publish(cluster: ThrowawayCluster) -> None:
    settings = Settings()
    settings.broker_transport_options = {"wait_replicas": 1, "wait_timeout": 0.2}
    b = RedisBroker(cluster.url, settings)
    settings2 = Settings()
    settings2.broker_transport_options = {"wait_replicas": 2, "wait_timeout": 0.2}
    too_many = RedisBroker(cluster.url, settings2)
    try:
        queue = f"wait-{uuid.uuid4().hex[:6]}"
        b.publish(queue, envelope("kept"))  # each master has one replica: confirmed
        with pytest.raises(BrokerError, match="only 1 of 2 replica"):
            too_many.publish(queue, envelope("unconfirmed"))
        # Unconfirmed is not undone: the message may still run (at least once, never lost).
        assert b.queue_length(queue) == 2
    finally:
        b.close()
        too_many.close()


def test_beat_schedule_store_on_the_cluster(cluster: ThrowawayCluster) -> None:
    """Every key of one schedule shares the prefix's hash tag: its multi-key scripts
    (claim, write) and transactions run in one slot; a change wakes a waiting beat."""
    store = RedisScheduleStore(f"{cluster.url}?prefix=beat-{uuid.uuid4().hex[:6]}:")
    waiter = RedisScheduleStore(store.url)
    try:
        assert store.prefix.startswith("{beat-") and store.prefix.endswith("}:")
        start = datetime(2026, 3, 2, 12, 0, tzinfo=timezone.utc)
        entry = Entry("e", "t.task", every(seconds=1), start_date=start, state=EntryState(next_run_time=start))
        known = waiter.revision()
        woke = threading.Event()
        thread = threading.Thread(
            target=lambda: woke.set() if waiter.wait_for_change(5, threading.Event(), known) else None
        )
        thread.start()
        assert store.add(entry) and [e.id for e in store.entries()] == ["e"]
        thread.join(6)
        assert woke.is_set()
        assert store.acquire_lock("a", 5) and not store.acquire_lock("b", 5)
        advanced = EntryState(next_run_time=start + timedelta(seconds=1), last_run_time=start)
        assert store.claim("a", "e", start, start, advanced, []) is ClaimResult.CLAIMED
        assert store.claim("a", "e", start, start, advanced, []) is ClaimResult.TAKEN
        assert store.get("e").state.last_run_time == start  # type: ignore[union-attr]
        assert not store.enqueues_atomically  # a broker's queues are in other slots
        store.release_lock("a")
        assert store.lock_owner() is None
    finally:
        store.close()
        waiter.close()


def test_a_bad_cluster_url_is_one_line_and_exit_2(tmp_path: Path) -> None:
    env = base_env(tmp_path, "redis+cluster://127.0.0.1:6379/3")
    proc = subprocess.run(
        [sys.executable, "-m", "taskq", "worker", "-A", "example_tasks:app"],
        cwd=PROJECT, env=env, capture_output=True, text=True, timeout=60,
    )
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr and "a Redis Cluster has database 0 only" in proc.stderr


def test_acks_of_several_queues_on_one_cluster_pipeline(cluster: ThrowawayCluster) -> None:
    b = broker(cluster)
    try:
        queues = [f"pipe-{uuid.uuid4().hex[:6]}-{i}" for i in range(3)]
        for q in queues:
            b.publish(q, envelope(q))
        taken = b.fetch(queues, 10, timeout=1)
        assert len(taken) == 3
        pipe = b.client.pipeline(transaction=False)
        b.add_acks_to_pipeline(pipe, taken)
        assert pipe.execute() == [1, 1, 1]  # one ACK script per queue (slot), each acked its message
        assert all(b.queue_length(q) == 0 for q in queues)
    finally:
        b.close()
