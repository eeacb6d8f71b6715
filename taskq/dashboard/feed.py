"""Two threads that keep a FleetState current: one reads the fleet's events (``app.events``'s
receiver, whatever the broker), one polls every ``refresh`` seconds what events do not carry:
queue depths and dead-letter counts (the broker's admin calls ``taskq queues`` uses), the
dead letters themselves (``taskq dead-letters list``) and beat's entries (its schedule store).

A source that fails is shown on the page as a problem and tried again; it never stops the
dashboard.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import TYPE_CHECKING, Any

from taskq.brokers.base import DeadLetter, describe_error
from taskq.dashboard.state import BeatRow, DeadLetterRow, FleetState
from taskq.envelope import Envelope
from taskq.events.bus import create_bus
from taskq.events.receiver import EventReceiver

if TYPE_CHECKING:
    from taskq.app import TaskQ
    from taskq.beat.core.schedule_api import ScheduleAPI

log = logging.getLogger("taskq.dashboard")
DEAD_LETTER_LIMIT = 200
DEAD_LETTER_RELIST = 10.0  # seconds between listings of dead letters whose counts did not change
RETRY_SUBSCRIBE = 2.0


class Feed:
    def __init__(self, app: TaskQ, state: FleetState, refresh: float = 1.0) -> None:
        self.app = app
        self.state = state
        self.refresh = refresh
        self._stop = threading.Event()
        self._receiver: EventReceiver | None = None
        self._threads: list[threading.Thread] = []
        self._schedule: ScheduleAPI | None = None
        self._dead_counts: dict[str, int | None] = {}
        self._dead_listed_at = -DEAD_LETTER_RELIST

    def start(self) -> None:
        for target, name in ((self._read_events, "dashboard-events"), (self._poll, "dashboard-poll")):
            thread = threading.Thread(target=target, name=name, daemon=True)
            thread.start()
            self._threads.append(thread)

    def stop(self, timeout: float = 3.0) -> None:
        self._stop.set()
        if self._receiver is not None:
            self._receiver.should_stop = True
        for thread in self._threads:
            thread.join(timeout)

    # -- events ---------------------------------------------------------------------------
    def _read_events(self) -> None:
        while not self._stop.is_set():
            try:
                self._receiver = EventReceiver(create_bus(self.app.conf))
                try:
                    for event in self._receiver.itercapture():
                        self.state.apply(event)
                finally:
                    self._receiver.close()
            except Exception as exc:  # the broker went away: say so, subscribe again
                self.state.set_problem("events", f"cannot read events: {describe_error(exc)}")
                log.warning("Dashboard: events unreadable (%s); retrying", exc)
                self._stop.wait(RETRY_SUBSCRIBE)
            else:
                self.state.set_problem("events", None)

    # -- polling --------------------------------------------------------------------------
    def _poll(self) -> None:
        while not self._stop.is_set():
            self.poll_once()
            self._stop.wait(self.refresh)

    def poll_once(self) -> None:
        self._guarded("queues", self._read_queues)
        self._guarded("beat", self._read_beat)
        self.state.tick()

    def _guarded(self, source: str, read: Any) -> None:
        try:
            read()
        except Exception as exc:
            self.state.set_problem(source, f"cannot read {source}: {describe_error(exc)}")
        else:
            self.state.set_problem(source, None)

    def _read_queues(self) -> None:
        broker = self.app.broker
        names = set(broker.queues()) | {self.app.conf.task_default_queue} | self.state.known_queues()
        depths: dict[str, tuple[int | None, int | None]] = {
            q: (broker.queue_length(q), broker.dead_letter_count(q)) for q in sorted(names)
        }
        self.state.set_queues(depths)
        # Listing dead letters moves their payloads (on RabbitMQ it takes them and puts them
        # back): only when their counts changed, else every DEAD_LETTER_RELIST seconds.
        counts: dict[str, int | None] = {q: dead for q, (_, dead) in depths.items()}
        now = time.monotonic()
        if counts != self._dead_counts or now - self._dead_listed_at >= DEAD_LETTER_RELIST:
            self.state.set_dead_letters([dead_letter_row(d) for d in broker.dead_letters(None, DEAD_LETTER_LIMIT)])
            self._dead_counts, self._dead_listed_at = counts, now

    def _read_beat(self) -> None:
        if self._schedule is None:
            from taskq.beat.core.schedule_api import schedule_api_for

            self._schedule = schedule_api_for(self.app)
        self.state.set_beat([beat_row(entry) for entry in self._schedule.get_jobs()])


def dead_letter_row(letter: DeadLetter) -> DeadLetterRow:
    """A dead letter with what its message says (task, id, arguments) when it can be decoded."""
    name = task_id = args = ""
    try:
        headers = Envelope.from_bytes(letter.raw).headers
        name, task_id = str(headers.get("task") or ""), str(headers.get("id") or "")
        args = str(headers.get("argsrepr") or "")
    except Exception:  # undecodable messages are dead letters too: shown with their reason only
        pass
    return DeadLetterRow(letter.id, letter.queue, letter.reason, letter.failed_at, name, task_id, args)


def beat_row(entry: Any) -> BeatRow:
    last = entry.state.last_run_time
    nxt = entry.next_run_time
    return BeatRow(
        entry.id, entry.task, repr(entry.schedule),
        None if nxt is None or entry.paused else nxt.isoformat(timespec="seconds"),
        None if last is None else last.isoformat(timespec="seconds"), entry.paused,
    )
