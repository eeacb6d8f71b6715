"""Time limits, recycling under load, revocation, rate limits and the asyncio pool again on
RabbitMQ (a killed child's delivery comes back at once with its connection; revocations live
on the result backend's Redis; early messages wait in the delay queues), each test in a
fresh vhost."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.conftest import rabbitmq_worker_env
from tests.integration.test_asyncio_pool import (  # noqa: F401 - collected here with RabbitMQ
    test_fifty_sleeping_coroutines_run_at_once,
)
from tests.integration.test_rate_limits import (  # noqa: F401 - collected here with RabbitMQ
    test_thirty_tasks_at_ten_per_second_take_at_least_2_7_seconds,
)
from tests.integration.test_recycling import (  # noqa: F401 - collected here with RabbitMQ
    test_children_are_replaced_after_n_tasks_and_nothing_is_lost,
)
from tests.integration.test_revoke import *  # noqa: F403 - the same tests, with the broker_env below
from tests.integration.test_time_limits import (  # noqa: F401 - collected here with RabbitMQ
    test_overrunning_tasks_are_killed_and_the_rest_succeed,
    test_soft_limit_is_raised_inside_the_task_which_cleans_up,
)


@pytest.fixture  # type: ignore[no-redef]  # replaces the imported, broker-parametrized one
def broker_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, str]]:
    yield from rabbitmq_worker_env(tmp_path, monkeypatch)
