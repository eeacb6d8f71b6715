"""What a worker does after a task of a workflow finishes: the callbacks and next chain
step on success, the errbacks on failure, the chord count either way.

Order and at-least-once: the steps are sent BEFORE the task's result is stored and its
message acknowledged. A worker that dies in between leaves the message to be delivered
again; the task runs again and sends the same steps again, with the same ids (frozen by
the producer, or derived from the finished task's id: ids.py). Every step message carries
the ``taskq_step`` header, and a worker takes the first delivery of a step id; a second,
fresh copy of it (a send repeated after a crash) is acknowledged without running
(``duplicate``). A redelivery of the copy that was taken runs as any redelivery does. Chord
counting is idempotent per header task id, so a header task that runs twice counts once.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from taskq import states
from taskq.canvas import ids
from taskq.canvas.chords import header_part_done
from taskq.canvas.signatures import Signature, signature
from taskq.errors import BackendError, ConfigurationError
from taskq.message import parse
from taskq.signing import signer_for

if TYPE_CHECKING:
    from taskq.app import TaskQ
    from taskq.brokers.base import Delivery
    from taskq.message import TaskMessage

log = logging.getLogger("taskq.canvas")
STEP_HEADER = "taskq_step"
TAKEN_PREFIX = "taskq-step-taken-"


class CanvasSteps:
    def __init__(self, app: TaskQ) -> None:
        self.app = app

    # -- the receiving side -----------------------------------------------------------------
    def _taken_key(self, msg: TaskMessage) -> str:
        return f"{TAKEN_PREFIX}{msg.id}-{msg.retries}"

    def duplicate(self, delivery: Delivery, msg: TaskMessage) -> bool:
        """True for a fresh copy of a step message whose id was taken before (sent twice)."""
        if not msg.headers.get(STEP_HEADER) or delivery.redeliveries:
            return False  # checked first: most messages are no step, and app.backend costs a pid check
        backend = self.app.backend
        if backend is None:
            return False
        try:
            return bool(backend.incr(self._taken_key(msg)) > 1)
        except BackendError as exc:  # cannot tell: run it (at-least-once)
            log.warning("Result backend failed checking step %s for a copy (%s); running it", msg.id, exc)
            return False

    def release(self, headers: dict[str, Any]) -> None:
        """A taken step handed back unstarted (cold shutdown) may be taken again."""
        backend = self.app.backend
        if headers.get(STEP_HEADER) and backend is not None:
            backend.reset_counter(f"{TAKEN_PREFIX}{headers.get('id')}-{headers.get('retries') or 0}")

    @staticmethod
    def retry_options(msg: TaskMessage) -> dict[str, Any]:
        """Send options that keep a retried task in its workflow: its embed, its group, and
        the step mark (a retry sent twice, by a worker that died before acking, runs once)."""
        embed = msg.embed or {}
        options: dict[str, Any] = {
            "link": embed.get("callbacks"), "link_error": embed.get("errbacks"),
            "chain": embed.get("chain"), "chord": embed.get("chord"),
        }
        if msg.group:
            options.update(group_id=msg.group, group_index=msg.headers.get("group_index"))
        if msg.headers.get(STEP_HEADER):
            options["headers"] = {STEP_HEADER: 1}
        return {k: v for k, v in options.items() if v is not None}

    # -- the sending side -------------------------------------------------------------------
    def send(self, sig: Signature, args: tuple[Any, ...], **options: Any) -> list[Any]:
        """Send a step marked as one; returns its result's Celery tuple (for ``children``)."""
        headers = {**(sig.options.get("headers") or {}), **(options.pop("headers", None) or {}), STEP_HEADER: 1}
        try:
            result = sig.apply_async(args, headers=headers, **options)
        except ConfigurationError as exc:
            # A step this worker cannot send (an option it does not know, from another producer):
            # its result says so, so whoever waits for the workflow is told, not left waiting.
            log.error("Step %r after a task could not be sent: %s", sig, exc)
            backend = self.app.backend
            if sig.id and backend is not None:
                meta = {"exc_type": "ConfigurationError", "exc_message": [str(exc)], "exc_module": "taskq.errors"}
                backend.store(sig.id, states.FAILURE, meta)
            return [[sig.id, None], None]
        return list(result.as_tuple())

    def after_success(self, msg: TaskMessage, result: Any) -> list[Any] | None:
        """Send callbacks and the next chain step, count a chord part; the children's tuples,
        or None when the result backend failed (the message is then delivered again)."""
        embed = msg.embed or {}
        common = {"parent_id": msg.id, "root_id": msg.root_id or msg.id}
        children: list[Any] = []
        try:
            with ids.derived_from(msg.id, "success"):
                for callback in embed.get("callbacks") or []:
                    children.append(self.send(signature(callback, self.app), (result,), **common))
                chain = list(embed.get("chain") or [])
                if chain:
                    following = signature(chain.pop(), self.app)
                    children.append(self.send(following, (result,), chain=chain, **common))
            if embed.get("chord") and msg.group:
                header_part_done(self.app, msg, embed["chord"], states.SUCCESS, result, {}, self.send)
        except BackendError as exc:
            log.error("Result backend failed sending the steps after %s (%s); it will be delivered again", msg.id, exc)
            return None
        return children

    def after_failure(self, msg: TaskMessage, failure: dict[str, Any], traceback: str | None) -> bool:
        """Send errbacks (with the failed task's id, as Celery's task errbacks get it), mark the
        rest of the chain failed, count a chord part as failed. False when the backend failed."""
        embed = msg.embed or {}
        backend = self.app.backend
        common = {"parent_id": msg.id, "root_id": msg.root_id or msg.id}
        try:
            with ids.derived_from(msg.id, "failure"):
                for errback in embed.get("errbacks") or []:
                    self.send(signature(errback, self.app), (msg.id,), **common)
                chain = [signature(step, self.app) for step in embed.get("chain") or []]
                for step in chain:
                    if step.id and backend is not None:  # the chain's result (its last step) reports it
                        backend.store(step.id, states.FAILURE, failure, traceback)
                last = chain[0].options if chain else {}
                if last.get("chord"):  # this chain is a chord's header task: count it there
                    header_part_done(self.app, msg, last["chord"], states.FAILURE, failure, last, self.send)
            if embed.get("chord") and msg.group:
                header_part_done(self.app, msg, embed["chord"], states.FAILURE, failure, {}, self.send)
        except BackendError as exc:
            log.error("Result backend failed after the failure of %s (%s); it will be delivered again", msg.id, exc)
            return False
        return True

    def given_up(self, delivery: Delivery, failure: dict[str, Any]) -> None:
        """A message dead-lettered without a run (redelivered too often: it kills its worker)
        fails its workflow as a failed run would, so a chord waiting for it ends."""
        if delivery.envelope is None:
            return
        try:
            msg = parse(delivery.envelope, self.app.accepted, signer_for(self.app.conf), delivery.queue)
        except Exception:  # InvalidMessage, or whatever a hostile message makes a decoder raise
            return  # nothing of it can be trusted, its embed neither
        if msg.embed:
            self.after_failure(msg, failure, None)
