"""The contract suites on a Redis Cluster: a 3-master + 3-replica cluster this test process
starts on first use (tests/redis_topology.py) and stops when it exits. Each broker or backend
gets a unique key prefix; cleanup deletes its keys on every master."""

from __future__ import annotations

import atexit
import tempfile
from collections.abc import Callable
from pathlib import Path

from redis.cluster import ClusterNode, RedisCluster

from taskq.backends.base import ResultBackend
from taskq.brokers.base import Broker
from taskq.config import Settings
from tests.contract.conftest import BACKENDS, BROKERS
from tests.contract.redis_factories import unique_prefix
from tests.redis_topology import ThrowawayCluster

_cluster: ThrowawayCluster | None = None


def cluster_url() -> str:
    global _cluster
    if _cluster is None:
        server = ThrowawayCluster(Path(tempfile.mkdtemp(prefix="taskq-contract-cluster-")))
        server.start()
        atexit.register(server.stop)
        _cluster = server
    return _cluster.url


def delete_prefixed(prefix: str) -> None:
    assert _cluster is not None
    client = RedisCluster(startup_nodes=[ClusterNode("127.0.0.1", _cluster.ports[0])])  # type: ignore[no-untyped-call]
    try:
        for key in list(client.scan_iter(match=prefix + "*", count=1000)):
            client.delete(key)
    finally:
        client.close()


def cluster_broker(tmp_path: Path, settings: Settings) -> tuple[Broker, Callable[[], None]]:
    from taskq.brokers.redis import RedisBroker

    url, prefix = cluster_url(), unique_prefix()
    settings.broker_transport_options = {**settings.broker_transport_options, "global_keyprefix": prefix}
    broker = RedisBroker(url, settings)

    def cleanup() -> None:
        broker.close()
        delete_prefixed(prefix)

    return broker, cleanup


def cluster_backend(tmp_path: Path, settings: Settings) -> tuple[ResultBackend, Callable[[], None]]:
    from taskq.backends.redis import RedisBackend

    url, prefix = cluster_url(), unique_prefix()
    backend = RedisBackend(url, settings, global_keyprefix=prefix)

    def cleanup() -> None:
        backend.close()
        delete_prefixed(prefix)

    return backend, cleanup


BROKERS["redis-cluster"] = cluster_broker
BACKENDS["redis-cluster"] = cluster_backend
