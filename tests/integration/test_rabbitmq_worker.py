"""The whole worker suite (test_worker.py) again, on RabbitMQ, each test in a fresh vhost.

Results go to Redis (RabbitMQ keeps no results); task ids are unique, so the Redis keys of
concurrent tests never meet.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.contract.rabbitmq_factories import fresh_vhost
from tests.integration.test_worker import *  # noqa: F403 - the same tests, with the broker_env below
from tests.integration.workers import base_env
from tests.servers import require_rabbitmq, require_redis


@pytest.fixture  # type: ignore[no-redef]  # replaces the imported, broker-parametrized one
def broker_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, str]]:
    amqp, redis = require_rabbitmq(), require_redis()
    with fresh_vhost(amqp) as url:
        env = base_env(tmp_path, url, redis, TASKQ_RESULT_EXPIRES="600")
        for key, value in env.items():
            if key.startswith("TASKQ_"):
                monkeypatch.setenv(key, value)  # this test process's apps use it too
        yield env
