"""Issue 19 point 7: docs/migrating-from-celery.md answers for every Celery setting and flag."""

from __future__ import annotations

from pathlib import Path

import pytest

DOC = Path(__file__).resolve().parents[2] / "docs" / "migrating-from-celery.md"


def test_every_celery_setting_is_in_the_doc_with_an_answer() -> None:
    defaults = pytest.importorskip("celery.app.defaults")
    text = DOC.read_text()
    missing = [name for name in defaults.SETTING_KEYS if f"| `{name}` |" not in text]
    assert missing == []
    assert "no answer yet" not in text


def test_the_generated_tables_are_current() -> None:
    pytest.importorskip("celery")
    from taskq.compat.migration_doc import render

    text = DOC.read_text()
    assert render(text) == text, "run: python -m taskq.compat.migration_doc docs/migrating-from-celery.md"


def test_every_celery_worker_flag_is_in_the_doc() -> None:
    pytest.importorskip("celery")
    from celery.bin.worker import worker

    text = DOC.read_text()
    for param in worker.params:
        assert f"`celery worker {' / '.join([*param.opts, *param.secondary_opts])}`" in text
