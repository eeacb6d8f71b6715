"""The whole worker suite (test_worker.py) again, on RabbitMQ, each test in a fresh vhost.

Results go to Redis (RabbitMQ keeps no results); task ids are unique, so the Redis keys of
concurrent tests never meet.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.conftest import rabbitmq_worker_env
from tests.integration.test_worker import *  # noqa: F403 - the same tests, with the broker_env below


@pytest.fixture  # type: ignore[no-redef]  # replaces the imported, broker-parametrized one
def broker_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, str]]:
    yield from rabbitmq_worker_env(tmp_path, monkeypatch)
