"""The worker's task-* events (``-E`` / ``worker_send_task_events``), built from taskq.signals.

Fields and types are Celery's (celery/worker/request.py, strategy.py): uuid, name, args and
kwargs as their repr strings, retries, eta and expires as ISO strings or None, root_id,
parent_id (task-received also names its ``queue``, which Celery's leaves out: monitors such as
the dashboard group tasks by it; Celery's tools ignore a field they do not know);
task-succeeded has ``result`` (a repr string) and ``runtime`` (float seconds);
task-failed and task-retried have ``exception`` (a repr) and ``traceback`` (a string).
"""

from __future__ import annotations

import os
from datetime import datetime
from typing import Any

from taskq import signals
from taskq.events.dispatcher import EventDispatcher

REPR_MAX = 1024  # Celery truncates argsrepr/kwargsrepr and results alike


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def _repr(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= REPR_MAX else text[: REPR_MAX - 3] + "..."


class TaskEvents:
    """Receivers that turn task signals into events; ``install()`` connects them."""

    def __init__(self, dispatcher: EventDispatcher) -> None:
        self.dispatcher = dispatcher

    def install(self) -> None:
        signals.task_received.connect(self.on_received)
        signals.task_prerun.connect(self.on_prerun)
        signals.task_success.connect(self.on_success)
        signals.task_failure.connect(self.on_failure)
        signals.task_retry.connect(self.on_retry)
        signals.task_revoked.connect(self.on_revoked)
        signals.task_rejected.connect(self.on_rejected)

    def uninstall(self) -> None:
        for sig, fn in (
            (signals.task_received, self.on_received), (signals.task_prerun, self.on_prerun),
            (signals.task_success, self.on_success), (signals.task_failure, self.on_failure),
            (signals.task_retry, self.on_retry), (signals.task_revoked, self.on_revoked),
            (signals.task_rejected, self.on_rejected),
        ):
            sig.disconnect(fn)

    def on_received(self, request: Any, **_: Any) -> None:
        headers = request.headers or {}
        self.dispatcher.send(
            "task-received", uuid=request.id, name=request.task,
            args=headers.get("argsrepr") or _repr(tuple(request.args)),
            kwargs=headers.get("kwargsrepr") or _repr(request.kwargs), retries=request.retries,
            eta=_iso(request.eta), expires=_iso(request.expires), root_id=request.root_id or request.id,
            parent_id=request.parent_id, queue=request.queue,
        )

    def on_prerun(self, task_id: str, **_: Any) -> None:
        self.dispatcher.send("task-started", uuid=task_id, pid=os.getpid())

    def on_success(self, result: Any, request: Any, runtime: float, **_: Any) -> None:
        self.dispatcher.send("task-succeeded", uuid=request.id, result=_repr(result), runtime=runtime)

    def on_failure(self, task_id: str, exception: BaseException, einfo: Any, **_: Any) -> None:
        self.dispatcher.send("task-failed", uuid=task_id, exception=_repr(exception), traceback=str(einfo or ""))

    def on_retry(self, request: Any, reason: Any, **_: Any) -> None:
        self.dispatcher.send("task-retried", uuid=request.id, exception=_repr(reason), traceback="")

    def on_revoked(self, request: Any, terminated: bool, signum: Any, expired: bool, **_: Any) -> None:
        self.dispatcher.send(
            "task-revoked", uuid=request.id, terminated=bool(terminated), signum=signum, expired=bool(expired)
        )

    def on_rejected(self, task_id: str = "?", **_: Any) -> None:
        self.dispatcher.send("task-rejected", uuid=task_id, requeue=False)
