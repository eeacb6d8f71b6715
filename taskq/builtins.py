"""Tasks every app has, under Celery's names so that either library's beat can send them."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from taskq.app import TaskQ

BACKEND_CLEANUP = "celery.backend_cleanup"
# Backends whose expired results stay until deleted (Redis expires its own; rpc:// keeps none).
CLEANED_SCHEMES = ("db", "sqlite")


def add_builtin_tasks(app: TaskQ) -> None:
    def backend_cleanup() -> int:
        """Delete the results older than result_expires (what ``taskq results cleanup`` does)."""
        backend = app.backend
        return backend.cleanup() if backend is not None else 0

    app.task(name=BACKEND_CLEANUP, ignore_result=True)(backend_cleanup)
