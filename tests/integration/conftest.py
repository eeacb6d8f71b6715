from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from taskq import TaskQ
from tests.integration.workers import PROJECT, WorkerFactory, base_env

if str(PROJECT) not in sys.path:
    sys.path.insert(0, str(PROJECT))


@pytest.fixture
def sqlite_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """Worker environment on a fresh SQLite file; the test process's app uses it too."""
    url = f"sqlite:///{tmp_path}/broker.db"
    env = base_env(tmp_path, url)
    for key, value in env.items():
        if key.startswith("TASKQ_"):
            monkeypatch.setenv(key, value)
    return env


@pytest.fixture
def workers(tmp_path: Path, sqlite_env: dict[str, str]) -> Iterator[WorkerFactory]:
    factory = WorkerFactory(tmp_path, sqlite_env)
    try:
        yield factory
    finally:
        factory.close()


@pytest.fixture
def producer(sqlite_env: dict[str, str]) -> Iterator[TaskQ]:
    """A producer app on the same broker and backend; sends by task name."""
    app = TaskQ("producer", broker=os.environ["TASKQ_BROKER_URL"])
    yield app
    app.close()
