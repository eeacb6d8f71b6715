"""Task ids for canvas steps: random on a producer, deterministic inside a worker's hook.

A worker sends the next steps of a workflow before it stores its task's result. If it dies
in between, the message is delivered again and the same steps are sent again; ids drawn
from the finished task's id (``uuid5``, in the same order each time) make the second send
carry the same ids, so the receiving worker recognises the copy (taskq/canvas/steps.py).
"""

from __future__ import annotations

import contextlib
import contextvars
import itertools
from collections.abc import Iterator
from typing import TYPE_CHECKING

from taskq.message import new_task_id

if TYPE_CHECKING:
    import uuid

# uuid is imported where an id is derived, not here: with the platform module it pulls in,
# it is 4 ms of ``import taskq`` (a producer's start), and only a worker sending a
# workflow's next steps derives ids (issue 22, startup).
_SEED: contextvars.ContextVar[tuple[uuid.UUID, itertools.count[int]] | None] = contextvars.ContextVar(
    "taskq_canvas_seed", default=None
)
_NAMESPACE = "5b0f3c4e-3a57-4c55-9b5c-7461736b7121"


def new_id() -> str:
    seeded = _SEED.get()
    if seeded is None:
        return new_task_id()
    import uuid

    seed, counter = seeded
    return str(uuid.uuid5(seed, str(next(counter))))


@contextlib.contextmanager
def derived_from(parent_id: str, role: str) -> Iterator[None]:
    """Within the block, ``new_id`` returns ids that depend only on the parent and the order."""
    import uuid

    token = _SEED.set((uuid.uuid5(uuid.UUID(_NAMESPACE), f"{parent_id}/{role}"), itertools.count()))
    try:
        yield
    finally:
        _SEED.reset(token)
