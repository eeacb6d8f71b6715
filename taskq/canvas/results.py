"""GroupResult: the results of a group's tasks, in submission order; saved as Celery saves it."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from taskq.errors import ConfigurationError
from taskq.result import AsyncResult

if TYPE_CHECKING:
    from taskq.app import TaskQ


class GroupResult:
    def __init__(self, group_id: str, results: list[Any], app: TaskQ, parent: Any = None) -> None:
        self.id = group_id
        self.results = results
        self.app = app
        self.parent = parent

    def __repr__(self) -> str:
        return f"<GroupResult: {self.id} [{', '.join(r.id for r in self.results)}]>"

    def __len__(self) -> int:
        return len(self.results)

    def __iter__(self) -> Iterator[Any]:
        return iter(self.results)

    def __getitem__(self, index: int) -> Any:
        return self.results[index]

    def ready(self) -> bool:
        return all(r.ready() for r in self.results)

    def successful(self) -> bool:
        return all(r.successful() for r in self.results)

    def failed(self) -> bool:
        return any(r.failed() for r in self.results)

    def completed_count(self) -> int:
        """How many tasks ended SUCCESS."""
        return sum(1 for r in self.results if r.successful())

    def get(self, timeout: float | None = None, propagate: bool = True) -> list[Any]:
        """Every result in submission order (waiting for each); the first failure is raised
        when ``propagate``. ``timeout`` bounds the whole wait."""
        deadline = None if timeout is None else time.monotonic() + timeout
        values = []
        for result in self.results:
            left = None if deadline is None else max(deadline - time.monotonic(), 0.0)
            values.append(result.get(timeout=left, propagate=propagate))
        return values

    join = get

    def forget(self) -> None:
        for result in self.results:
            result.forget()
        self._backend().forget_group(self.id)

    def as_tuple(self) -> list[Any]:
        """Celery's form: ``[[group id, parent], [member tuples]]``."""
        parent = None if self.parent is None else self.parent.as_tuple()
        return [[self.id, parent], [r.as_tuple() for r in self.results]]

    def save(self) -> GroupResult:
        """Store the member ids under Celery's ``celery-taskset-meta-<id>`` for ``restore``."""
        self._backend().save_group(self.id, {"result": self.as_tuple(), "status": "SUCCESS", "task_id": self.id})
        return self

    @classmethod
    def restore(cls, group_id: str, app: TaskQ) -> GroupResult | None:
        backend = app.backend
        if backend is None:
            raise ConfigurationError("GroupResult.restore needs a result backend")
        document = backend.restore_group(group_id)
        if document is None:
            return None
        restored = result_from_tuple(document["result"], app)
        return restored if isinstance(restored, GroupResult) else None

    def _backend(self) -> Any:
        backend = self.app.backend
        if backend is None:
            raise ConfigurationError("no result backend is configured (set backend= or TASKQ_RESULT_BACKEND)")
        return backend


def result_from_tuple(data: Any, app: TaskQ) -> AsyncResult[Any] | GroupResult:
    """Read Celery's ``as_tuple`` form back: ``[[id, parent], None]`` for a task,
    ``[[id, parent], [members]]`` for a group."""
    (result_id, parent), members = data
    parent_result = None if parent is None else result_from_tuple(parent, app)
    if members is not None:
        return GroupResult(result_id, [result_from_tuple(m, app) for m in members], app, parent_result)
    result: AsyncResult[Any] = AsyncResult(result_id, app)
    result.parent = parent_result
    return result
