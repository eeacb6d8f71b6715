"""Eager mode (``app.conf.task_always_eager``): ``delay``/``apply_async`` run the task here,
at once, and return an EagerResult, as Celery's eager mode does. For tests only.

The call is first built as a real message (same option checks, same serializer), so a call
that would fail to send fails here too; then the function runs in this thread with its
``self.request`` set. A retry runs again at once (its countdown is not waited), until the
task's max_retries, as in Celery. Nothing is written to the broker or the result backend.
``app.send_task`` by name still sends (Celery ignores eager mode there too).
"""

from __future__ import annotations

import asyncio
import inspect
import threading
import traceback
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, TypeVar

from taskq import states
from taskq.errors import Retry
from taskq.result import AsyncResult
from taskq.task import Request, current_request, set_current_request

if TYPE_CHECKING:
    from taskq.app import TaskQ
    from taskq.task import Task

R = TypeVar("R")


class EagerResult(AsyncResult[R]):
    """The outcome of a task run eagerly, kept here: no result backend is read."""

    def __init__(self, task_id: str, app: TaskQ, state: str, value: Any, traceback_text: str | None = None) -> None:
        super().__init__(task_id, app)
        self._state = state
        self._value = value
        self._traceback = traceback_text

    def __repr__(self) -> str:
        return f"<EagerResult: {self.id} {self._state}>"

    def _meta(self) -> dict[str, Any]:
        return {"task_id": self.id, "status": self._state, "result": self._value, "traceback": self._traceback}

    @property
    def result(self) -> Any:
        """The return value; for a failed task the exception itself (not raised)."""
        return self._value

    info = result

    def get(self, timeout: float | None = None, propagate: bool = True) -> R:
        """The return value, or the task's own exception raised when ``propagate``."""
        if self._state == states.FAILURE and propagate:
            raise self._value
        return self._value  # type: ignore[no-any-return]

    def forget(self) -> None:
        """Nothing was stored."""


def apply_eagerly(
    task: Task[Any, R], args: Sequence[Any] | None, kwargs: dict[str, Any] | None, options: dict[str, Any]
) -> EagerResult[R]:
    """Run one call of ``task`` here; raise its exception when ``task_eager_propagates``."""
    app = task.app
    # Every check a send makes; a route that reaches several queues still runs once here.
    publication = app.build_publications(task.name, args, kwargs, **options)[0]
    call_args, call_kwargs = list(args or ()), dict(kwargs or {})
    retries = int(options.get("retries") or 0)
    outer = current_request()  # an eager call made by a running task: its request comes back after
    try:
        while True:
            request = Request(
                id=publication.envelope.id, task=task.name, args=call_args, kwargs=call_kwargs, retries=retries,
                queue=publication.queue, priority=int(options.get("priority") or 0),
                headers=dict(options.get("headers") or {}),
            )
            set_current_request(request)
            try:
                value = _call(task, call_args, call_kwargs, request)
            except Retry as retry:
                retries += 1  # Celery's eager retry: again at once, countdown not waited
                call_args = call_args if retry.args_override is None else retry.args_override
                call_kwargs = call_kwargs if retry.kwargs_override is None else retry.kwargs_override
                continue
            except Exception as exc:
                if isinstance(exc, task.options.autoretry_for) and not request.retries_exhausted:
                    try:
                        task.retry(exc=exc)
                    except Retry:
                        retries += 1
                        continue
                    except Exception as final:  # retries exhausted: the task's own exception
                        exc = final
                if app.conf.task_eager_propagates:
                    raise
                text = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
                return EagerResult(publication.envelope.id, app, states.FAILURE, exc, text)
            return EagerResult(publication.envelope.id, app, states.SUCCESS, value)
    finally:
        set_current_request(outer)


def _call(task: Task[Any, Any], args: list[Any], kwargs: dict[str, Any], request: Request) -> Any:
    result = task(*args, **kwargs)
    if not inspect.iscoroutine(result):
        return result
    try:
        asyncio.get_running_loop()
    except RuntimeError:  # no event loop here: run the coroutine on a new one
        return asyncio.run(result)
    return _run_in_thread(result, request)  # called from async code: its loop is busy running us


def _run_in_thread(coroutine: Any, request: Request) -> Any:
    outcome: dict[str, Any] = {}

    def run() -> None:
        set_current_request(request)  # self.request is per thread
        try:
            outcome["value"] = asyncio.run(coroutine)
        except BaseException as exc:  # handed to the calling thread
            outcome["error"] = exc

    thread = threading.Thread(target=run, name="taskq-eager-async")
    thread.start()
    thread.join()
    if "error" in outcome:
        raise outcome["error"]
    return outcome["value"]
