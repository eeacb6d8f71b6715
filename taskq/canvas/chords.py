"""A chord's header task finished: count it, and the task that completes the count sends
the body (or fails it). Counting is one atomic, idempotent step in the result backend
(``ResultBackend.chord_add``), so there is no unlock task and no polling."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from taskq import states
from taskq.backends.base import ChordPart
from taskq.canvas import ids
from taskq.canvas.signatures import Signature, signature
from taskq.result import exception_from_meta

if TYPE_CHECKING:
    from taskq.app import TaskQ
    from taskq.message import TaskMessage

log = logging.getLogger("taskq.canvas")
LAST = 2**31  # where a header task without a group_index sorts (Celery's '+inf')


def header_part_done(app: TaskQ, msg: TaskMessage, body_data: Any, state: str, result: Any, options: dict[str, Any],
                     send: Any) -> None:
    """Record the header task ``msg`` (or the chain step standing for it, ``options``) and,
    when every header task is recorded, send the body with the results in header order or
    fail it with ChordError naming the first failed header task. ``send(sig, args, **opts)``
    sends a step (taskq/canvas/steps.py)."""
    group_id = options.get("group_id") or msg.group
    backend = app.backend
    if not group_id or backend is None or not backend.supports_chords:
        log.error("Chord part %s cannot be counted: no group id or no counting result backend", msg.id)
        return
    body = signature(body_data, app)
    size = body.get("chord_size") or backend.chord_size(group_id)
    if size is None:
        log.error("Chord %s: its size is unknown (no chord_size in the body and no saved size)", group_id)
        return
    index = options.get("group_index", msg.headers.get("group_index"))
    part = ChordPart(index if isinstance(index, int) else LAST, options.get("task_id") or msg.id, state, result)
    if backend.chord_add(group_id, part) < int(size):
        return
    parts = backend.chord_parts(group_id)
    with ids.derived_from(group_id, "chord"):
        failed = next((p for p in parts if p.state != states.SUCCESS), None)
        if failed is None:
            send(body, ([p.result for p in parts],), parent_id=msg.id, root_id=msg.root_id)
        else:
            fail_body(app, body, failed, msg, send)


def fail_body(app: TaskQ, body: Signature, failed: ChordPart, msg: TaskMessage, send: Any) -> None:
    """Store ChordError naming the failed header task as the body's result, send its errbacks."""
    exc = exception_from_meta(failed.result) if failed.state == states.FAILURE else None
    text = f"Dependency {failed.task_id} raised {exc!r}" if exc else f"Dependency {failed.task_id} ended {failed.state}"
    backend = app.backend
    assert backend is not None  # a chord is counted in it
    if body.id:
        failure = {"exc_type": "ChordError", "exc_message": [text], "exc_module": "taskq.errors"}
        backend.store(body.id, states.FAILURE, failure)
    log.error("Chord body %s failed: %s", body.id, text)
    for errback in body.options.get("link_error") or []:
        send(signature(errback, app), (body.id,), parent_id=msg.id, root_id=msg.root_id)
