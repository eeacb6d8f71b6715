"""A Redis master SIGKILLed mid-run, on a Redis Cluster (its replica takes over its slots) and
under Sentinel (the sentinels promote the replica): producers and consumers follow the new
master by themselves, and with ``wait_replicas: 1`` no acknowledged message is lost.
Duplicates are allowed (at-least-once): a claim or an ack the replica had not received yet
makes a message run again. The counts are printed (run with -s to see them).

Heavy: each test starts its own servers (the kill leaves them degraded) and is bounded to
about 30 s."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from taskq import TaskQ
from taskq.brokers.redis import RedisBroker
from tests.integration.failover_traffic import FailoverTraffic, redis_settings
from tests.integration.workers import WorkerFactory, base_env
from tests.redis_topology import ThrowawayCluster, ThrowawaySentinels, wait_for
from tests.throwaway import serve

pytestmark = [pytest.mark.redis, pytest.mark.slow]


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[ThrowawayCluster]:
    yield from serve(ThrowawayCluster(tmp_path))


@pytest.fixture
def sentinels(tmp_path: Path) -> Iterator[ThrowawaySentinels]:
    yield from serve(ThrowawaySentinels(tmp_path))


def test_cluster_master_sigkilled_mid_run_loses_no_acknowledged_message(cluster: ThrowawayCluster) -> None:
    queues = [f"failover-{uuid.uuid4().hex[:6]}-{i}" for i in range(3)]
    traffic = FailoverTraffic(cluster.url, queues, redis_settings(wait_replicas=1))
    producer = traffic.producer
    assert isinstance(producer, RedisBroker)

    def kill_the_first_queues_master() -> None:
        victim = cluster.master_of(producer.lane_key(queues[0], 0))
        cluster.kill(victim)
        # its replica takes over and the traffic goes on there by itself...
        wait_for(lambda: cluster.master_of(producer.lane_key(queues[0], 0)) != victim, 15, "failover")
        # (with its only replica promoted, the shard confirms nothing with WAIT 1 until the
        # old master is back, as a replica of the new one)
        cluster.restart(victim)

    # Given producers and consumers busy on three queues, when the master that serves the
    # first queue is SIGKILLed
    counts = traffic.through(kill_the_first_queues_master, timeout=20)
    print(f"\nredis cluster failover (wait_replicas=1): {counts}")
    # ...and every message whose publish returned was delivered.
    assert counts["lost"] == 0, counts


def test_sentinel_master_sigkilled_mid_run_loses_no_acknowledged_message(sentinels: ThrowawaySentinels) -> None:
    queues = [f"sentinel-{uuid.uuid4().hex[:6]}-{i}" for i in range(2)]
    traffic = FailoverTraffic(sentinels.url, queues, redis_settings(wait_replicas=1))

    def kill_the_master() -> None:
        old = sentinels.current_master()
        sentinels.kill(old)
        wait_for(lambda: sentinels.current_master() != old, 15, "the sentinels to promote the replica")
        sentinels.restart(old)  # the sentinels make it a replica of the new master...
        # ...once they see it up again (their INFO round): until then WAIT 1 confirms nothing.
        wait_for(lambda: sentinels.has_replica(sentinels.current_master()), 30, "the old master as a replica")

    counts = traffic.through(kill_the_master, timeout=20)
    print(f"\nredis sentinel failover (wait_replicas=1): {counts}")
    assert counts["lost"] == 0, counts


def test_a_worker_and_a_producer_follow_the_new_master(
    sentinels: ThrowawaySentinels, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    env = base_env(tmp_path, sentinels.url, TASKQ_BEAT_STORE_URL=f"sqlite:///{tmp_path}/beat.db")
    for key, value in env.items():
        if key.startswith("TASKQ_"):
            monkeypatch.setenv(key, value)
    workers = WorkerFactory(tmp_path, env)
    producer = TaskQ("producer")  # broker and results on the sentinel-managed master
    try:
        workers.start("-c", "2", "-P", "threads")
        assert [producer.send_task("example_tasks.add", (i, 1)).get(timeout=20) for i in range(10)] == list(
            range(1, 11)
        )
        old = sentinels.current_master()
        killed = time.monotonic()
        sentinels.kill(old)
        # The first send after the kill waits (retrying) until the sentinels name the replica.
        assert producer.send_task("example_tasks.add", (100, 1)).get(timeout=30) == 101
        followed = time.monotonic() - killed
        assert sentinels.current_master() != old
        assert [producer.send_task("example_tasks.add", (i, 2)).get(timeout=20) for i in range(10)] == list(
            range(2, 12)
        )
        print(f"\nworker and producer on the new master {followed:.1f} s after the kill")
        assert followed < 20
    finally:
        producer.close()
        workers.close()
