"""Registers the Redis broker and backend in the contract suites.

Each instance gets a unique key prefix (broker) or key/channel prefix (backend), and its
cleanup deletes every key under that prefix, so tests never see each other's data.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from pathlib import Path

import redis

from taskq.backends.base import ResultBackend
from taskq.brokers.base import Broker
from taskq.config import Settings
from tests.contract.conftest import BACKENDS, BROKERS
from tests.servers import require_redis


def delete_prefixed(url: str, prefix: str) -> None:
    client = redis.Redis.from_url(url)
    try:
        keys = list(client.scan_iter(match=prefix + "*", count=1000))
        for start in range(0, len(keys), 500):
            client.delete(*keys[start : start + 500])
    finally:
        client.close()


def unique_prefix() -> str:
    return f"taskq-test-{uuid.uuid4().hex[:12]}:"


def redis_broker(tmp_path: Path, settings: Settings) -> tuple[Broker, Callable[[], None]]:
    from taskq.brokers.redis import RedisBroker

    url = require_redis()
    prefix = unique_prefix()
    settings.broker_transport_options = {**settings.broker_transport_options, "global_keyprefix": prefix}
    broker = RedisBroker(url, settings)

    def cleanup() -> None:
        broker.close()
        delete_prefixed(url, prefix)

    return broker, cleanup


def redis_backend(tmp_path: Path, settings: Settings) -> tuple[ResultBackend, Callable[[], None]]:
    from taskq.backends.redis import RedisBackend

    url = require_redis()
    prefix = unique_prefix()
    backend = RedisBackend(url, settings, global_keyprefix=prefix)

    def cleanup() -> None:
        backend.close()
        delete_prefixed(url, prefix)

    return backend, cleanup


BROKERS["redis"] = redis_broker
BACKENDS["redis"] = redis_backend
