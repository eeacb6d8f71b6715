"""Canvas on the db+ result backends (PostgreSQL, MariaDB, SQLite through SQLAlchemy), with an
in-process worker on the memory broker: a chord counts in ``taskq_chord_parts``, a group is
saved in Celery's ``celery_tasksetmeta``. Runs once the db+ backend (taskq/backends/database.py)
mixes in ``taskq.backends.db_chords.ChordParts``; skipped where that backend is not built."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from taskq import ChordError, GroupResult, TaskQ, chord, group
from taskq.config import Settings
from tests.contract.conftest import BACKENDS
from tests.unit.conftest import inline_worker

pytest.importorskip("taskq.backends.database", reason="the db+ result backend is not in this tree")
DB_BACKENDS = sorted(name for name in BACKENDS if name.startswith("db+"))


@pytest.fixture(params=DB_BACKENDS)
def app(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[TaskQ]:
    settings = Settings()
    backend, cleanup = BACKENDS[request.param](tmp_path, settings)
    # the factory's isolated database (its own schema or database), by its URL
    app = TaskQ("dbcanvas", broker=f"memory://{uuid.uuid4().hex}", backend=backend.url, recovery_time=1.0)
    try:
        yield app
    finally:
        app.close()
        cleanup()


def test_chord_group_and_failure_on_a_database_backend(app: TaskQ) -> None:
    @app.task(name="db.add")
    def add(a: int, b: int) -> int:
        return a + b

    @app.task(name="db.tsum")
    def tsum(values: list[int]) -> int:
        return sum(values)

    @app.task(name="db.boom")
    def boom() -> None:
        raise ValueError("boom")

    with inline_worker(app):
        assert chord([add.s(i, 1) for i in range(30)], tsum.s()).apply_async().get(timeout=20) == sum(range(1, 31))
        failed = chord([add.s(1, 1), boom.si()], tsum.s()).apply_async()
        with pytest.raises(ChordError, match="Dependency"):
            failed.get(timeout=20)
        g = group(add.s(i, i) for i in range(3)).apply_async()
        assert g.get(timeout=20) == [0, 2, 4]
        g.save()
        restored = GroupResult.restore(g.id, app)
        assert restored is not None and restored.get(timeout=5) == [0, 2, 4]
