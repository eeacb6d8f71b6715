"""The core's one hook: everything the scheduling loop does is reported as a BeatEvent to an
event sink (a callable). Logging is one sink; the scheduler API attaches as another and
translates them into APScheduler's events (``taskq.beat.events``), without touching the loop.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

log = logging.getLogger("taskq.beat")

# Event kinds.
STARTED = "started"
STOPPED = "stopped"
LEADER_ELECTED = "leader_elected"
LEADER_LOST = "leader_lost"
ENTRY_ADDED = "entry_added"
ENTRY_MODIFIED = "entry_modified"
ENTRY_REMOVED = "entry_removed"
SUBMITTED = "submitted"
MISSED = "missed"
MAX_INSTANCES = "max_instances"
ALREADY_CLAIMED = "already_claimed"  # another beat took this instant: logged, never enqueued twice
ERROR = "error"


@dataclass(frozen=True)
class BeatEvent:
    kind: str
    entry_id: str | None = None
    instants: tuple[datetime, ...] = ()  # scheduled (un-jittered) instants concerned
    task_ids: tuple[str, ...] = ()
    detail: dict[str, Any] = field(default_factory=dict)


EventSink = Callable[[BeatEvent], None]


class FanOut:
    """Deliver each event to every sink; a sink that raises is logged and never stops beat."""

    def __init__(self, sinks: Sequence[EventSink] = ()) -> None:
        self.sinks: list[EventSink] = list(sinks)

    def add(self, sink: EventSink) -> None:
        self.sinks.append(sink)

    def remove(self, sink: EventSink) -> None:
        self.sinks.remove(sink)

    def __call__(self, event: BeatEvent) -> None:
        for sink in list(self.sinks):
            try:
                sink(event)
            except Exception:
                log.exception("beat event sink %r failed on %s", sink, event.kind)


def _when(instants: tuple[datetime, ...]) -> str:
    if not instants:
        return ""
    if len(instants) == 1:
        return instants[0].isoformat()
    return f"{len(instants)} instants {instants[0].isoformat()} .. {instants[-1].isoformat()}"


def log_event(event: BeatEvent) -> None:
    """The logging sink: one line per event."""
    d = event.detail
    if event.kind == SUBMITTED:
        log.info(
            "beat: sent %s (entry %s) for %s, %.2f ms late",
            d.get("task"), event.entry_id, _when(event.instants), d.get("lateness", 0.0) * 1000,
        )
    elif event.kind == MISSED:
        count = d.get("count", len(event.instants))
        log.warning(
            "beat: entry %s missed %d run(s) (%s): %s", event.entry_id, count, d.get("reason"), _when(event.instants)
        )
    elif event.kind == MAX_INSTANCES:
        log.warning(
            "beat: entry %s skipped %s: %s run(s) still unfinished (max_instances=%s)",
            event.entry_id, _when(event.instants), d.get("unfinished"), d.get("max_instances"),
        )
    elif event.kind == ERROR:
        log.error("beat: %s", d.get("message"))
    elif event.kind == ALREADY_CLAIMED:
        log.info("beat: entry %s %s was already claimed by another beat", event.entry_id, _when(event.instants))
    elif event.entry_id is not None:
        log.info("beat: %s %s", event.kind.replace("_", " "), event.entry_id)
    else:
        log.info("beat: %s %s", event.kind.replace("_", " "), " ".join(f"{k}={v}" for k, v in d.items()))
