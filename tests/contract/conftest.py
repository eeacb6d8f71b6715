"""Every broker and every backend passes the same contract suite.

Add an implementation = add one factory below. A factory takes (tmp_path, settings) and
returns a fresh, isolated instance plus a cleanup callable.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from taskq.backends.base import ResultBackend
from taskq.brokers.base import Broker
from taskq.config import Settings

Factory = Callable[[Path, Settings], tuple[Any, Callable[[], None]]]


def _memory_broker(tmp_path: Path, settings: Settings) -> tuple[Broker, Callable[[], None]]:
    from taskq.brokers.memory import MemoryBroker

    return MemoryBroker(f"memory://{uuid.uuid4().hex}", settings), lambda: None


def _sqlite_broker(tmp_path: Path, settings: Settings) -> tuple[Broker, Callable[[], None]]:
    from taskq.brokers.sqlite import SQLiteBroker

    broker = SQLiteBroker(f"sqlite:///{tmp_path}/broker.db", settings)
    return broker, broker.close


def _memory_backend(tmp_path: Path, settings: Settings) -> tuple[ResultBackend, Callable[[], None]]:
    from taskq.backends.memory import MemoryBackend

    return MemoryBackend(f"memory://{uuid.uuid4().hex}", settings), lambda: None


def _sqlite_backend(tmp_path: Path, settings: Settings) -> tuple[ResultBackend, Callable[[], None]]:
    from taskq.backends.sqlite import SQLiteBackend

    backend = SQLiteBackend(f"sqlite:///{tmp_path}/results.db", settings)
    return backend, backend.close


BROKERS: dict[str, Factory] = {
    "memory": _memory_broker,
    "sqlite": _sqlite_broker,
}
BACKENDS: dict[str, Factory] = {
    "memory": _memory_backend,
    "sqlite": _sqlite_backend,
}

# Optional implementations register themselves from their own modules.
_OPTIONAL = ("redis_factories", "redis_cluster_factories", "rabbitmq_factories", "postgres_factories")
for _module in (f"tests.contract.{name}" for name in _OPTIONAL):
    try:
        __import__(_module)
    except ImportError:
        pass


@pytest.fixture
def settings() -> Settings:
    s = Settings()
    s.recovery_time = 1.0
    s.result_expires = 60.0
    s.broker_poll_interval = 0.01
    return s


@pytest.fixture(params=sorted(BROKERS))
def broker(request: pytest.FixtureRequest, tmp_path: Path, settings: Settings) -> Iterator[Broker]:
    instance, cleanup = BROKERS[request.param](tmp_path, settings)
    try:
        yield instance
    finally:
        cleanup()


@pytest.fixture(params=sorted(BACKENDS))
def backend(request: pytest.FixtureRequest, tmp_path: Path, settings: Settings) -> Iterator[ResultBackend]:
    instance, cleanup = BACKENDS[request.param](tmp_path, settings)
    try:
        yield instance
    finally:
        cleanup()
