"""AsyncResult: a task's state and result by id, read from the result backend."""

from __future__ import annotations

import reprlib
import sys
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from taskq import states
from taskq.errors import ConfigurationError, TaskFailure

if TYPE_CHECKING:
    from taskq.app import TaskQ
    from taskq.backends.base import ResultBackend

R = TypeVar("R")
_REPR = reprlib.Repr()
_REPR.maxstring = _REPR.maxother = 500


def exception_from_meta(result: Any) -> BaseException:
    """Rebuild a failed task's exception from Celery's {exc_type, exc_message, exc_module}.

    Only Exception classes from modules already imported here are rebuilt (a result document
    must not make us import code, nor make ``get()`` raise SystemExit or KeyboardInterrupt);
    anything else becomes a TaskFailure carrying the type's name.
    """
    if not isinstance(result, dict) or not isinstance(result.get("exc_type"), str):
        return TaskFailure("Exception", _short_repr(result))
    name, module = result["exc_type"], result.get("exc_module") or "builtins"
    message = result.get("exc_message", [])
    args = tuple(message) if isinstance(message, (list, tuple)) else (message,)
    cls = getattr(sys.modules.get(module), name, None) if isinstance(module, str) else None
    if isinstance(cls, type) and issubclass(cls, Exception):
        try:
            return cls(*args)
        except Exception:  # constructors with other signatures
            pass
    return TaskFailure(name, " ".join(_short_repr(a) if not isinstance(a, str) else a for a in args))


def _short_repr(value: Any) -> str:
    """repr() bounded in depth and length: a forged document may nest deeper than the stack."""
    return _REPR.repr(value)


class AsyncResult(Generic[R]):
    def __init__(self, task_id: str, app: TaskQ, parent: Any = None) -> None:
        self.id = task_id
        self.app = app
        self.parent = parent  # the previous step of a chain (or a chord's header), when known here

    def __repr__(self) -> str:
        return f"<AsyncResult: {self.id}>"

    @property
    def backend(self) -> ResultBackend:
        backend = self.app.backend
        if backend is None:
            raise ConfigurationError("no result backend is configured (set backend= or TASKQ_RESULT_BACKEND)")
        return backend

    def _meta(self) -> dict[str, Any]:
        return self.backend.get_meta(self.id)

    @property
    def state(self) -> str:
        return str(self._meta()["status"])

    status = state

    def ready(self) -> bool:
        return self.state in states.READY_STATES

    def successful(self) -> bool:
        return self.state == states.SUCCESS

    def failed(self) -> bool:
        return self.state == states.FAILURE

    @property
    def result(self) -> Any:
        """The return value; for a failed task the exception (not raised)."""
        meta = self._meta()
        if meta["status"] in (states.FAILURE, states.RETRY):
            return exception_from_meta(meta.get("result"))
        return meta.get("result")

    info = result

    @property
    def traceback(self) -> str | None:
        tb = self._meta().get("traceback")
        return None if tb is None else str(tb)

    def get(self, timeout: float | None = None, propagate: bool = True) -> R:
        """Wait for the result; a failed task's exception is raised when ``propagate``."""
        meta = self.backend.wait_for(self.id, timeout)
        if meta["status"] == states.SUCCESS:
            return meta.get("result")  # type: ignore[return-value]
        exc = exception_from_meta(meta.get("result")) if meta["status"] == states.FAILURE else None
        if meta["status"] == states.REVOKED:
            from taskq.errors import TaskRevokedError

            exc = TaskRevokedError(f"task {self.id} was revoked: {meta.get('result')}")
        if propagate and exc is not None:
            raise exc
        return exc  # type: ignore[return-value]

    async def aget(self, timeout: float | None = None, propagate: bool = True) -> R:
        """``get`` for asyncio code: waits in a thread so the event loop keeps running."""
        import asyncio  # here: most processes never await a result, and asyncio is slow to import

        return await asyncio.to_thread(self.get, timeout, propagate)

    @property
    def children(self) -> list[Any]:
        """The results of the steps this task's worker sent (chain step, callbacks, chord body)."""
        from taskq.canvas.results import result_from_tuple

        return [result_from_tuple(child, self.app) for child in self._meta().get("children") or []]

    def collect(self, timeout: float | None = None) -> Iterator[tuple[Any, Any]]:
        """``(result, value)`` for this task and then, depth first, everything it started."""
        yield self, self.get(timeout=timeout)
        for child in self.children:
            if isinstance(child, AsyncResult):
                yield from child.collect(timeout)
            else:
                for member in child.results:
                    yield from member.collect(timeout)

    def as_tuple(self) -> list[Any]:
        """Celery's form: ``[[id, parent], None]``."""
        return [[self.id, None if self.parent is None else self.parent.as_tuple()], None]

    def forget(self) -> None:
        self.backend.forget(self.id)

    def revoke(self, terminate: bool = False, expires: float | None = None) -> None:
        """No worker runs this task (``app.control.revoke``); ``terminate`` also stops it if running."""
        self.app.control.revoke(self.id, terminate=terminate, expires=expires)
