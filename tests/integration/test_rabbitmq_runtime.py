"""Time limits and revocation again on RabbitMQ (a killed child's delivery comes back at
once with its connection; revocations live on the result backend's Redis), each test in a
fresh vhost."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.contract.rabbitmq_factories import fresh_vhost
from tests.integration.test_revoke import *  # noqa: F403 - the same tests, with the broker_env below
from tests.integration.test_time_limits import (  # noqa: F401 - collected here with RabbitMQ
    test_overrunning_tasks_are_killed_and_the_rest_succeed,
    test_soft_limit_is_raised_inside_the_task_which_cleans_up,
)
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
