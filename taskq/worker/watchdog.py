"""The prefork supervisor's watchdog: hard time limits and ``revoke(terminate=True)``.

Each child publishes the task it runs and its hard deadline in its slot (slots.py). The
supervisor, which runs no task code, reads the slots every loop turn and, for a task past
its deadline or revoked with terminate, first records the outcome in the result backend
(FAILURE with TimeLimitExceeded, or REVOKED), then kills the child; the pool starts a fresh
one. The message is not acked here (its claim belongs to the dead child): it comes back
once the claim expires (or at once on RabbitMQ, when the child's connection drops), and the
worker that receives it sees the task finished and acks it unrun (runner.py), so it is never
run again. A task killed at its hard limit is also entered in the revocations (its FAILURE
kept), so even a copy of its message that comes back unflagged is skipped.
"""

from __future__ import annotations

import logging
import os
import signal
import time
from dataclasses import dataclass

from taskq import states
from taskq.app import TaskQ
from taskq.errors import BackendError, BrokerError
from taskq.revocations import Revocations
from taskq.worker.slots import ChildSlots, Running

log = logging.getLogger("taskq.worker")
# How long past its deadline a child may keep handing messages back before it is killed all
# the same (a hand-back waits on the broker: its timeouts end it well before this).
HANDBACK_WAIT = 30.0


@dataclass(frozen=True)
class Kill:
    pid: int
    slot: int
    task_id: str
    why: str


class Watchdog:
    def __init__(self, app: TaskQ, slots: ChildSlots) -> None:
        self.app = app
        self.slots = slots
        self.revocations = Revocations(app)
        self.opened = False  # this process holds server connections (closed before a fork)

    def check(self, children: dict[int, int]) -> list[Kill]:
        """Kill every child whose task is past its hard deadline or revoked with terminate;
        ``children`` is pid -> slot. Returns what was killed."""
        now = time.monotonic()
        running = {pid: r for pid, slot in children.items() if slot >= 0 and (r := self.slots.running(slot))}
        if not running:
            return []
        terminated: set[str] = set()
        if self.revocations.available:
            try:
                self.opened = True
                terminated = self.revocations.terminated()
            except BrokerError as exc:
                log.warning("Could not read revocations (%s)", exc)
        kills = []
        for pid, task in running.items():
            timed_out = bool(task.deadline) and now >= task.deadline
            if not (timed_out or task.task_id in terminated):
                continue
            # Not halfway through handing messages back (handback.py): the next turn then.
            late = timed_out and now - task.deadline > HANDBACK_WAIT
            if self.slots.handback.take(children[pid]) or late:
                kills.append(self._kill(pid, children[pid], task, timed_out=timed_out))
        return kills

    def _kill(self, pid: int, slot: int, task: Running, timed_out: bool) -> Kill:
        if timed_out:
            why = f"hard time limit ({task.limit:g}s) exceeded"
            log.error("Task [%s] %s: killing pool worker %d (pid %d)", task.task_id, why, slot + 1, pid)
            meta = {"exc_type": "TimeLimitExceeded", "exc_message": [why], "exc_module": "taskq.errors"}
            tb = f"taskq.errors.TimeLimitExceeded: {why}; the worker killed the process running task {task.task_id}\n"
            self._record(task.task_id, states.FAILURE, meta, tb)
            self._settle(task.task_id)
        else:
            why = "revoked with terminate=True"
            log.warning("Task [%s] %s: killing pool worker %d (pid %d)", task.task_id, why, slot + 1, pid)
            self._record(task.task_id, states.REVOKED, "terminated", None)
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        return Kill(pid, slot, task.task_id, why)

    def _record(self, task_id: str, state: str, result: object, tb: str | None) -> None:
        """The outcome first: if this fails the task runs again (at-least-once), never silently lost."""
        backend = self.app.backend
        if backend is None:
            return
        self.opened = True
        try:
            backend.store(task_id, state, result, tb)
        except BackendError as exc:
            log.error("Result backend failed recording %s for %s (%s); it will run again", state, task_id, exc)

    def lost(self, slot: int, code: int) -> None:
        """A child died running a task, and ``task_reject_on_worker_lost`` is off (Celery's
        default): the task ends FAILURE WorkerLostError and its message is settled, not rerun."""
        task = self.slots.running(slot)
        if task is None or self.app.conf.task_reject_on_worker_lost:
            return
        why = f"Worker exited prematurely: exit code {code}"
        log.error("Task [%s] lost with pool worker %d: %s; not run again", task.task_id, slot + 1, why)
        meta = {"exc_type": "WorkerLostError", "exc_message": [why], "exc_module": "taskq.errors"}
        self._record(task.task_id, states.FAILURE, meta, f"taskq.errors.WorkerLostError: {why}\n")
        self._settle(task.task_id)

    def _settle(self, task_id: str) -> None:
        """Also record the task as revoked: a copy of its message that comes back unflagged
        (RabbitMQ returns a held message as a fresh copy) is then skipped too."""
        if not self.revocations.available:
            return
        try:
            self.revocations.revoke(task_id)
        except BrokerError as exc:
            log.error("Could not record %s as settled (%s)", task_id, exc)

    def close(self) -> None:
        """Before a fork: a child must not inherit this process's connections (SQLite's locks)."""
        if self.opened:
            self.revocations.close()
            self.app.close()
            self.opened = False
