"""Where a due run goes: messages built by the app (``app.build_publication``), published
by the broker when the schedule store cannot enqueue in its claim, and the result backend
asked which earlier runs are still unfinished (``max_instances``)."""

from __future__ import annotations

import time
from collections.abc import Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any, Protocol

from taskq.beat.core.entry import Entry
from taskq.brokers.base import Publication
from taskq.states import READY_STATES

if TYPE_CHECKING:
    from taskq.app import TaskQ

ENTRY_HEADER = "taskq_beat_entry"
INSTANT_HEADER = "taskq_beat_instant"  # the un-jittered scheduled instant, ISO-8601


class Submitter(Protocol):
    """Where a due run goes (an *executor* in APScheduler's words), in two phases around the
    claim: ``publications`` are the messages the store may enqueue inside its claim; after a
    successful claim ``start`` makes the run happen (publishes them if the store did not, or,
    for an in-process executor, runs the job). Runs are identified by ``entry.task_id(instant)``
    so that every beat names a run alike."""

    def publications(self, entry: Entry, instant: datetime) -> list[Publication]: ...

    def start(self, entry: Entry, instant: datetime, publications: Sequence[Publication], enqueued: bool) -> None:
        """Make the claimed run happen; ``enqueued``: the store already enqueued ``publications``."""

    def unfinished(self, pending: Sequence[tuple[str, float | None]]) -> list[tuple[str, float | None]]:
        """The subset of (run id, forget-after) runs that have not finished yet."""

    def track(self, entry: Entry, run_ids: Sequence[str]) -> list[tuple[str, float | None]]:
        """(run id, forget-after) for runs about to start, to count them for max_instances."""


class AppSubmitter:
    def __init__(self, app: TaskQ) -> None:
        self.app = app

    def publications(self, entry: Entry, instant: datetime) -> list[Publication]:
        options: dict[str, Any] = {
            k: v for k, v in entry.options.items() if k in ("queue", "exchange", "routing_key", "priority", "expires")
        }
        headers = dict(entry.options.get("headers") or {})
        headers[ENTRY_HEADER] = entry.id
        headers[INSTANT_HEADER] = instant.isoformat()
        return self.app.build_publications(
            entry.task,
            list(entry.args),
            dict(entry.kwargs),
            task_id=entry.task_id(instant),
            headers=headers,
            **options,
        )

    def start(self, entry: Entry, instant: datetime, publications: Sequence[Publication], enqueued: bool) -> None:
        if not enqueued:
            self.app.broker.publish_many(publications)

    def track(self, entry: Entry, run_ids: Sequence[str]) -> list[tuple[str, float | None]]:
        # A run stops counting when it expires (the worker will not run it) or when the
        # backend forgets results (an unknown id reads PENDING: it would block for ever).
        now = time.time()
        forget = now + float(self.app.conf.result_expires)
        expires = entry.options.get("expires")
        if isinstance(expires, (int, float)):
            forget = min(forget, now + float(expires))
        elif isinstance(expires, datetime):
            forget = min(forget, expires.timestamp())
        return [(run_id, forget) for run_id in run_ids]

    def unfinished(self, pending: Sequence[tuple[str, float | None]]) -> list[tuple[str, float | None]]:
        backend = self.app.backend
        if backend is None:
            return []
        now = time.time()
        still: list[tuple[str, float | None]] = []
        for task_id, forget_after in pending:
            if forget_after is not None and forget_after <= now:
                continue  # expired: the worker will never run it
            if backend.get_meta(task_id).get("status") not in READY_STATES:
                still.append((task_id, forget_after))
        return still
