"""Celery's builtin tasks behind ``task.map``, ``task.starmap`` and ``task.chunks``
(taskq/canvas/mapping.py makes their signatures).

Registered on every app under Celery's names (``celery.map``, ``celery.starmap``,
``celery.chunks``), so either library's worker runs the other's. The app imports this
module, so it imports nothing of the canvas at import time.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from taskq.app import TaskQ


def register_builtins(app: TaskQ) -> None:
    def resolve(task: Any) -> Any:
        from taskq.canvas.signatures import signature

        return app.get_task(signature(task, app).name)

    @app.task(name="celery.map")
    def celery_map(task: Any, it: list[Any]) -> list[Any]:
        fn = resolve(task)
        return [fn(item) for item in it]

    @app.task(name="celery.starmap")
    def celery_starmap(task: Any, it: list[list[Any]]) -> list[Any]:
        fn = resolve(task)
        return [fn(*item) for item in it]

    @app.task(name="celery.chunks")
    def celery_chunks(task: Any, it: list[list[Any]], n: int) -> list[Any]:
        """A chunks signature sent as one task (as Celery's worker does): its starmaps run here."""
        fn = resolve(task)
        return [[fn(*item) for item in it[i : i + n]] for i in range(0, len(it), n)]
