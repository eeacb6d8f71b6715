"""What the dashboard knows: workers, tasks and per-queue rates fed by events, plus what the
poller reads from the broker and the schedule store (queue depths, dead letters, beat entries).

One lock guards everything; readers take copies (``snapshot_*``), so rendering never holds it
while it formats. ``version`` moves on every change: the live stream sends again only then.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict, deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from typing import Any

from taskq import states

REJECTED = "REJECTED"  # Celery's state of a task-rejected event (taskq dead-letters the message)
EVENT_STATES = {
    "task-sent": states.PENDING,
    "task-received": states.RECEIVED,
    "task-started": states.STARTED,
    "task-retried": states.RETRY,
    "task-succeeded": states.SUCCESS,
    "task-failed": states.FAILURE,
    "task-revoked": states.REVOKED,
    "task-rejected": REJECTED,
}
FINISHED = frozenset({states.SUCCESS, states.FAILURE, states.REVOKED, REJECTED})
IN_FLIGHT = frozenset({states.RECEIVED, states.STARTED})
RATE_WINDOW = 60  # seconds of history behind each queue's sparkline
TaskListener = Callable[["TaskRecord"], None]


@dataclass
class TaskRecord:
    id: str
    name: str = ""
    state: str = states.PENDING
    args: str = ""
    kwargs: str = ""
    queue: str = ""
    worker: str = ""
    retries: int = 0
    eta: str | None = None
    result: str | None = None
    exception: str | None = None
    traceback: str | None = None
    runtime: float | None = None
    received: float | None = None
    started: float | None = None
    finished: float | None = None
    updated: float = 0.0  # timestamp of the event that set ``state``
    timeline: list[tuple[float, str, str]] = field(default_factory=list)  # (timestamp, what, who)
    retried_as: str | None = None  # the id of the copy the dashboard's retry sent


@dataclass
class WorkerRecord:
    hostname: str
    pool: str = ""
    concurrency: int | None = None
    active: int = 0
    processed: int = 0
    loadavg: tuple[float, ...] = ()
    freq: float = 2.0
    last_heartbeat: float = 0.0  # when it was received here (time.time())
    offline: bool = False

    def online(self, now: float) -> bool:
        """A worker is offline after saying so, or after two missed heartbeats (as Celery's monitors)."""
        return not self.offline and now - self.last_heartbeat <= 2 * self.freq


@dataclass(frozen=True)
class QueueRow:
    name: str
    depth: int | None
    dead: int | None
    in_flight: int
    delayed: int
    rate_in: list[int]
    rate_out: list[int]


@dataclass(frozen=True)
class DeadLetterRow:
    id: str
    queue: str
    reason: str
    failed_at: float
    task_name: str
    task_id: str
    args: str


@dataclass(frozen=True)
class BeatRow:
    id: str
    task: str
    schedule: str
    next_run: str | None
    last_run: str | None
    paused: bool


@dataclass(frozen=True)
class TaskFilter:
    state: str = ""
    name: str = ""
    queue: str = ""
    worker: str = ""

    def matches(self, task: TaskRecord) -> bool:
        return (
            (not self.state or task.state == self.state)
            and (not self.name or self.name.lower() in task.name.lower())
            and (not self.queue or task.queue == self.queue)
            and (not self.worker or self.worker.lower() in task.worker.lower())
        )


class Rates:
    """Events per second over the last RATE_WINDOW seconds."""

    def __init__(self) -> None:
        self._counts: deque[tuple[int, int]] = deque()  # (second, count), oldest first

    def add(self, at: float) -> None:
        second = int(at)
        if self._counts and self._counts[-1][0] == second:
            self._counts[-1] = (second, self._counts[-1][1] + 1)
        else:
            self._counts.append((second, 1))
        while self._counts and self._counts[0][0] <= second - RATE_WINDOW:
            self._counts.popleft()

    def series(self, now: float) -> list[int]:
        end = int(now)
        by_second = dict(self._counts)
        return [by_second.get(s, 0) for s in range(end - RATE_WINDOW + 1, end + 1)]


class FleetState:
    def __init__(self, max_tasks: int = 10_000, clock: Callable[[], float] = time.time) -> None:
        self.max_tasks = max_tasks
        self.clock = clock
        self.version = 0
        self.task_events_seen = False
        self.problems: dict[str, str] = {}  # source -> the last error reading it ("queues", "beat", "events")
        self._lock = threading.Lock()
        self._tasks: OrderedDict[str, TaskRecord] = OrderedDict()  # least recently changed first
        self._workers: dict[str, WorkerRecord] = {}
        self._rates_in: dict[str, Rates] = {}
        self._rates_out: dict[str, Rates] = {}
        self._depths: dict[str, tuple[int | None, int | None]] = {}
        self._dead_letters: list[DeadLetterRow] = []
        self._beat: list[BeatRow] | None = None
        self._listeners: list[TaskListener] = []

    def on_finished(self, listener: TaskListener) -> None:
        """Call ``listener(task)`` each time a task reaches SUCCESS, FAILURE, REVOKED or REJECTED."""
        self._listeners.append(listener)

    # -- events ---------------------------------------------------------------------------
    def apply(self, event: dict[str, Any]) -> None:
        kind = str(event.get("type", ""))
        finished: TaskRecord | None = None
        with self._lock:
            if kind.startswith("worker-"):
                self._apply_worker(kind, event)
            elif kind in EVENT_STATES and event.get("uuid"):
                finished = self._apply_task(kind, event)
            else:
                return
            self.version += 1
        if finished is not None:
            for listener in self._listeners:
                listener(finished)

    def _apply_worker(self, kind: str, event: dict[str, Any]) -> None:
        name = str(event.get("hostname", "?"))
        worker = self._workers.setdefault(name, WorkerRecord(name))
        worker.freq = float(event.get("freq") or worker.freq)
        worker.last_heartbeat = self.clock()
        worker.offline = kind == "worker-offline"
        if kind == "worker-heartbeat":
            worker.pool = str(event.get("pool") or worker.pool)
            worker.concurrency = event.get("concurrency", worker.concurrency)
            worker.active = int(event.get("active") or 0)
            worker.processed = int(event.get("processed") or 0)
            worker.loadavg = tuple(float(x) for x in event.get("loadavg") or ())

    def _apply_task(self, kind: str, event: dict[str, Any]) -> TaskRecord | None:
        self.task_events_seen = True
        task_id = str(event["uuid"])
        task = self._tasks.pop(task_id, None) or TaskRecord(task_id)
        self._tasks[task_id] = task  # now the most recently changed
        at = float(event.get("timestamp") or self.clock())
        hostname = str(event.get("hostname", ""))
        task.timeline.append((at, kind, hostname))
        task.timeline.sort()
        for key in ("name", "args", "kwargs", "queue", "result", "exception", "traceback", "eta"):
            value = event.get(key)
            if value is not None and value != "":
                setattr(task, key, str(value))
        if "retries" in event:
            task.retries = int(event.get("retries") or 0)
        if event.get("runtime") is not None:
            task.runtime = float(event["runtime"])
        if kind != "task-sent":
            task.worker = hostname or task.worker
        if kind == "task-received":
            task.received = at
            self._rates("in", task.queue).add(at)
        elif kind == "task-started":
            task.started = at
        new_state = EVENT_STATES[kind]
        if at < task.updated:  # an older event arriving late (another process's) keeps the newer state
            return None
        task.state, task.updated = new_state, at
        if new_state in FINISHED:
            task.finished = at
            self._rates("out", task.queue).add(at)
            self._evict()
            return replace(task, timeline=list(task.timeline))
        return None

    def _rates(self, direction: str, queue: str) -> Rates:
        table = self._rates_in if direction == "in" else self._rates_out
        return table.setdefault(queue or "?", Rates())

    def _evict(self) -> None:
        while len(self._tasks) > self.max_tasks:
            self._tasks.popitem(last=False)

    def mark(self, task_id: str, what: str, state: str | None = None, retried_as: str | None = None) -> None:
        """Record an action taken here (a revoke, a retry) on the task's timeline; ``state`` is
        what the result backend says now."""
        with self._lock:
            task = self._tasks.setdefault(task_id, TaskRecord(task_id))
            now = self.clock()
            task.timeline.append((now, what, "dashboard"))
            if state is not None and state != task.state:
                task.state, task.updated = state, max(now, task.updated)
                if state in FINISHED:
                    task.finished = now
            if retried_as is not None:
                task.retried_as = retried_as
            self.version += 1

    # -- what the poller reads ------------------------------------------------------------
    def set_queues(self, depths: dict[str, tuple[int | None, int | None]]) -> None:
        with self._lock:
            if depths != self._depths:
                self._depths = depths
                self.version += 1

    def set_dead_letters(self, rows: list[DeadLetterRow]) -> None:
        with self._lock:
            if rows != self._dead_letters:
                self._dead_letters = rows
                self.version += 1

    def set_beat(self, rows: list[BeatRow] | None) -> None:
        with self._lock:
            if rows != self._beat:
                self._beat = rows
                self.version += 1

    def set_problem(self, source: str, problem: str | None) -> None:
        with self._lock:
            if self.problems.get(source) != problem:
                if problem is None:
                    self.problems.pop(source, None)
                else:
                    self.problems[source] = problem
                self.version += 1

    def tick(self) -> None:
        """Time alone changes what is shown (a worker goes offline, rates move): bump the version."""
        with self._lock:
            self.version += 1

    # -- snapshots for the views ----------------------------------------------------------
    def known_queues(self) -> set[str]:
        with self._lock:
            return {t.queue for t in self._tasks.values() if t.queue} | set(self._depths)

    def workers(self) -> list[WorkerRecord]:
        with self._lock:
            return [replace(w) for w in sorted(self._workers.values(), key=lambda w: w.hostname)]

    def tasks(self, where: TaskFilter = TaskFilter(), limit: int = 100) -> list[TaskRecord]:
        """The newest-changed tasks that match, newest first."""
        with self._lock:
            found: list[TaskRecord] = []
            for task in reversed(self._tasks.values()):
                if where.matches(task):
                    found.append(replace(task, timeline=list(task.timeline)))
                    if len(found) >= limit:
                        break
            return found

    def task(self, task_id: str) -> TaskRecord | None:
        with self._lock:
            task = self._tasks.get(task_id)
            return None if task is None else replace(task, timeline=list(task.timeline))

    def task_names(self) -> list[str]:
        with self._lock:
            return sorted({t.name for t in self._tasks.values() if t.name})

    def queues(self) -> list[QueueRow]:
        now = self.clock()
        with self._lock:
            names = set(self._depths) | set(self._rates_in) - {"?"} | set(self._rates_out) - {"?"}
            in_flight = _count_by_queue(t for t in self._tasks.values() if t.state in IN_FLIGHT)
            delayed = _count_by_queue(
                t for t in self._tasks.values() if t.state == states.PENDING and t.eta and not t.received
            )
            rows = []
            for name in sorted(names):
                depth, dead = self._depths.get(name, (None, None))
                rates_in = self._rates_in.get(name) or Rates()
                rates_out = self._rates_out.get(name) or Rates()
                rows.append(QueueRow(name, depth, dead, in_flight.get(name, 0), delayed.get(name, 0),
                                     rates_in.series(now), rates_out.series(now)))
            return rows

    def dead_letters(self) -> list[DeadLetterRow]:
        with self._lock:
            return list(self._dead_letters)

    def beat(self) -> list[BeatRow] | None:
        with self._lock:
            return None if self._beat is None else list(self._beat)


def _count_by_queue(tasks: Iterable[TaskRecord]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for task in tasks:
        counts[task.queue] = counts.get(task.queue, 0) + 1
    return counts
