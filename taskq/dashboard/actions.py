"""What the dashboard's buttons do, each through the seam the CLI uses for the same job:
revoke (``app.control.revoke``, as ``taskq revoke``), retry a failed task, requeue or purge
dead letters (the broker's dead-letter admin, as ``taskq dead-letters``), pause or resume a
beat entry (the schedule API, as ``taskq schedule pause|resume``).

Each returns one line for the page, or raises ActionError with one line saying why not.
These calls block: the routes run them in a thread.
"""

from __future__ import annotations

import ast
from typing import TYPE_CHECKING, Any

from taskq import states
from taskq.brokers.base import describe_error
from taskq.dashboard.feed import dead_letter_row
from taskq.dashboard.state import FleetState

if TYPE_CHECKING:
    from taskq.app import TaskQ


class ActionError(Exception):
    """An action that could not be done; the message is shown as is (escaped)."""


class Actions:
    def __init__(self, app: TaskQ, state: FleetState) -> None:
        self.app = app
        self.state = state

    def run(self, name: str, form: dict[str, str]) -> str:
        handler = getattr(self, name.replace("-", "_"), None)
        if name not in ACTIONS or handler is None:
            raise ActionError(f"no action {name!r}")
        try:
            return str(handler(form))
        except ActionError:
            raise
        except Exception as exc:  # a server error is one line on the page, never a 500 with a traceback
            raise ActionError(f"{name} failed: {describe_error(exc)}") from None

    def revoke(self, form: dict[str, str]) -> str:
        task_id = _required(form, "task_id")
        self.app.control.revoke(task_id, terminate=True)
        backend = self.app.backend
        state = backend.get_meta(task_id)["status"] if backend is not None else None
        self.state.mark(task_id, "revoke requested", state=state)
        return f"revoked {task_id}"

    def retry(self, form: dict[str, str]) -> str:
        """Run a failed task again: its kept message when it is among the dead letters (the same
        id), else a new message with the arguments its events showed (when they read back)."""
        task_id = _required(form, "task_id")
        broker = self.app.broker
        for letter in broker.dead_letters(None, 10_000):
            if dead_letter_row(letter).task_id == task_id:
                broker.requeue_dead_letters(letter.queue, [letter.id])
                self.state.mark(task_id, "retry: dead letter requeued")
                return f"requeued the dead letter of {task_id}"
        task = self.state.task(task_id)
        if task is None or not task.name:
            raise ActionError(f"task {task_id} is not known here: nothing to retry")
        if task.state != states.FAILURE:
            raise ActionError(f"task {task_id} is {task.state}: only a failed task is retried")
        args, kwargs = _literal(task.args, tuple), _literal(task.kwargs, dict)
        if args is None or kwargs is None:
            raise ActionError(f"task {task_id}: its arguments are known only as text ({task.args} {task.kwargs})")
        options: dict[str, Any] = {"queue": task.queue} if task.queue else {}
        copy = self.app.send_task(task.name, args=list(args), kwargs=kwargs, **options)
        self.state.mark(task_id, f"retried as {copy.id}", retried_as=copy.id)
        return f"sent {task.name} again as {copy.id}"

    def requeue(self, form: dict[str, str]) -> str:
        """Requeue one dead letter (``letter_id`` and ``queue``), or every one of ``queue`` (or all)."""
        queue = form.get("queue") or None
        letter_id = form.get("letter_id") or ""
        moved = self.app.broker.requeue_dead_letters(queue, [letter_id] if letter_id else ())
        if letter_id and not moved:
            raise ActionError(f"dead letter {letter_id} is gone (requeued or purged already)")
        return f"requeued {moved} dead letter(s)"

    def purge_dead_letters(self, form: dict[str, str]) -> str:
        purged = self.app.broker.purge_dead_letters(form.get("queue") or None)
        return f"purged {purged} dead letter(s)"

    def pause(self, form: dict[str, str]) -> str:
        return self._schedule("pause_job", _required(form, "entry_id"))

    def resume(self, form: dict[str, str]) -> str:
        return self._schedule("resume_job", _required(form, "entry_id"))

    def _schedule(self, method: str, entry_id: str) -> str:
        from taskq.beat.core.schedule_api import schedule_api_for

        entry = getattr(schedule_api_for(self.app), method)(entry_id)
        return f"{entry.id}: {'paused' if entry.paused else 'active'}"


ACTIONS = ("revoke", "retry", "requeue", "purge-dead-letters", "pause", "resume")


def _required(form: dict[str, str], key: str) -> str:
    value = (form.get(key) or "").strip()
    if not value:
        raise ActionError(f"missing {key}")
    return value


def _literal(text: str, kind: type) -> Any:
    """The value a repr string stands for, when it is a plain literal of ``kind`` (a tuple may be
    shown as a list); None when it is not (an object's repr, or text cut at its length limit)."""
    if not text:
        return kind()
    try:
        value = ast.literal_eval(text)
    except (ValueError, SyntaxError, MemoryError, RecursionError):
        return None
    if kind is tuple and isinstance(value, list):
        value = tuple(value)
    return value if isinstance(value, kind) else None
