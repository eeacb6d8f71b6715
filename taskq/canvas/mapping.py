"""Signatures of ``task.map``, ``task.starmap`` and ``task.chunks`` (Celery's xmap, xstarmap,
chunks): one task that runs every call on one worker, or a group of such tasks. The tasks
they name are registered on every app (taskq/canvas/builtins.py)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any

from taskq.canvas.signatures import Signature
from taskq.errors import ConfigurationError

if TYPE_CHECKING:
    from taskq.canvas.primitives import group
    from taskq.task import Task


def xmap(task: Task[Any, Any], it: Iterable[Any]) -> Signature:
    return Signature("celery.map", (), {"task": task.s(), "it": list(it)}, app=task.app)


def xstarmap(task: Task[Any, Any], it: Iterable[Sequence[Any]]) -> Signature:
    return Signature("celery.starmap", (), {"task": task.s(), "it": [list(i) for i in it]}, app=task.app)


class chunks(Signature):
    """``task.chunks(it, n)``: sent as a group of starmaps of ``n`` calls each."""

    subtask_kind = "chunks"

    def __init__(self, task: Task[Any, Any], it: Iterable[Sequence[Any]], n: int) -> None:
        if not isinstance(n, int) or n < 1:
            raise ConfigurationError(f"chunks: n must be a positive integer, not {n!r}")
        super().__init__("celery.chunks", (), {"task": task.s(), "it": [list(i) for i in it], "n": n}, app=task.app)

    def group(self) -> group:
        from taskq.canvas.primitives import group

        task, items, n = self.kwargs["task"], self.kwargs["it"], int(self.kwargs["n"])
        starmaps = [
            Signature("celery.starmap", (), {"task": task, "it": items[i : i + n]}, app=self.app)
            for i in range(0, len(items), n)
        ]
        return group(*starmaps, app=self.app, **self.options)

    def prepare(self, args: Iterable[Any] = (), kwargs: dict[str, Any] | None = None, **options: Any) -> Any:
        return self.group().prepare(args, kwargs, **options)
