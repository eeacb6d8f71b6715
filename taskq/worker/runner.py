"""Run one delivery to its end: dead-letter, skip, run, retry, store, acknowledge.

Every path ends in exactly one of ack, dead_letter or (on a result-backend failure) leaving
the claim to expire, so a message is never lost and a poison message never loops.

Successful tasks' results and acks are deferred and written per batch (``flush``): all
results first, then all acks, so at-least-once holds while a batch of fast tasks costs two
round trips instead of two per task. The consumer flushes before it blocks on a fetch, and
before each task once the oldest deferred outcome is ``FLUSH_AFTER`` seconds old.
"""

from __future__ import annotations

import inspect
import json
import logging
import reprlib
import threading
import time
import traceback
from collections.abc import Callable
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

from taskq import signals, states
from taskq.app import TaskQ
from taskq.brokers.base import Broker, Delivery, describe_error
from taskq.canvas.steps import CanvasSteps
from taskq.control.stats import short
from taskq.display import OneLineRecords
from taskq.errors import BackendError, BrokerError, Retry
from taskq.message import TaskMessage, parse
from taskq.revocations import Revocations, Terminated
from taskq.signing import signer_for
from taskq.task import Request, Task, current_request, set_current_request
from taskq.worker.ratelimit import RateLimiter
from taskq.worker.replay import ReplayMemory
from taskq.worker.timelimits import NO_LIMITS, Alarm, Limits, app_limits, limited, limits_of

if TYPE_CHECKING:
    import asyncio

    from taskq.control.stats import SharedStats

log = logging.getLogger("taskq.worker")
log.addFilter(OneLineRecords())  # task ids, names and reasons come from messages
DELIVERY_COUNT_PREFIX = "taskq-deliveries-"
FLUSH_AFTER = 0.005  # seconds a finished task's result may wait to be written with others
FLUSH_COUNT = 128
_REPR = reprlib.Repr()  # bounded in depth: repr() of a deeply nested argument would raise
_REPR.maxstring = _REPR.maxother = 256


def exception_meta(exc: BaseException) -> dict[str, Any]:
    """Celery's failure document; arguments that JSON cannot carry become their repr."""
    args = [a if _jsonable(a) else _REPR.repr(a) for a in exc.args]
    return {"exc_type": type(exc).__name__, "exc_message": args, "exc_module": type(exc).__module__}


def _postrun(task: Task[Any, Any], request: Request, retval: Any, state: str) -> None:
    if signals.task_postrun.receivers:
        signals.task_postrun.send(
            sender=task, task_id=request.id, task=task, args=request.args, kwargs=request.kwargs, retval=retval,
            state=state, request=request,
        )


def _jsonable(value: Any) -> bool:
    try:
        json.dumps(value)
    except (TypeError, ValueError, RecursionError):  # RecursionError: nested deeper than the stack
        return False
    return True


class TaskRunner:
    def __init__(self, app: TaskQ, broker: Broker) -> None:
        self.app = app
        self.broker = broker
        self.conf = app.conf
        self.accepted = app.accepted
        self.signer = signer_for(self.conf)
        self.replays = ReplayMemory(lambda: self.backend)
        self.canvas = CanvasSteps(app)  # workflow steps after a task ends (taskq/canvas/steps.py)
        self._loop: asyncio.AbstractEventLoop | None = None
        self.shared_loop: asyncio.AbstractEventLoop | None = None  # -P asyncio: one loop for all threads
        self._results: list[tuple[str, bytes]] = []
        self._acks: list[Delivery] = []
        self._oldest = 0.0
        self._deferred_lock = threading.Lock()
        self.on_first_deferred: Callable[[], None] = lambda: None
        self.revocations = Revocations(app)
        self.alarm = Alarm(hard_in_process=True)  # a prefork child leaves the hard limit to its supervisor
        self.on_task: Callable[[str, Limits], None] = lambda task_id, limits: None  # prefork: the slot
        self.stats: SharedStats | None = None  # this consumer's record for inspect active (taskq worker)
        self._app_limits = app_limits(self.conf)
        self.rates = RateLimiter(app)  # pools share one per worker (pools.py, supervisor.py)

    @property
    def backend(self) -> Any:
        return self.app.backend

    def handle(self, delivery: Delivery) -> None:
        """Run one delivery to its end. Any exception while decoding or admitting the message
        (a malformed one: not a broker or backend outage) dead-letters it with the reason:
        no input may stop the consumer or bring the message back forever."""
        try:
            admitted = self._admit(delivery)
        except (BrokerError, BackendError):
            raise  # the consumer logs it; the claim expires and the message comes back
        except Exception as exc:  # whatever the message made us raise
            task_id = delivery.envelope.id if delivery.envelope is not None else ""
            self._dead_letter(delivery, describe_error(exc), task_id or "?")
            return
        if admitted is not None:
            self._run(delivery, *admitted)

    def _admit(self, delivery: Delivery) -> tuple[TaskMessage, Task[Any, Any]] | None:
        """The message and its task when it is to run now; None when it was settled here."""
        envelope = delivery.envelope
        counted = self.broker.counts_redeliveries  # then redeliveries is the count itself: most are 0
        if (
            counted
            and delivery.redeliveries > self.conf.max_deliveries
            and self._redelivered_too_often(delivery, envelope.id if envelope else "")
        ):
            return None  # checked before decoding: a message that kills its worker in there stops too
        if envelope is None:
            self._dead_letter(delivery, f"undecodable message: {delivery.error}", "?")
            return None
        msg = parse(envelope, self.accepted, self.signer, delivery.queue)
        task = self.app.tasks.get(msg.task)
        if task is None:
            self._dead_letter(delivery, f"unknown task {msg.task!r}", msg.id)
            return None
        if not counted and self._redelivered_too_often(delivery, msg.id):
            return None
        if self._rate_limited(delivery, msg):
            return None
        if msg.valid_until is not None and self._replayed(delivery, msg):  # only signed messages can be replays
            return None
        if delivery.redeliveries and self._already_finished(msg):
            self.broker.ack([delivery])
            log.info("Task %s[%s] already finished; redelivered copy acked without running", msg.task, msg.id)
            return None
        if self.revocations.is_revoked(msg.id):
            if not self._already_finished(msg):  # e.g. a FAILURE the hard time limit recorded
                self._store(msg.id, states.REVOKED, "revoked")
            self.broker.ack([delivery])
            log.info("Task %s[%s] revoked; not run", msg.task, msg.id)
            return None
        if msg.expires is not None and msg.expires < datetime.now(timezone.utc):
            if signals.task_revoked.receivers:  # the message is the request: it never ran
                signals.task_revoked.send(sender=task, request=msg, terminated=False, signum=None, expired=True)
            self._store(msg.id, states.REVOKED, "expired", reply_to=msg.reply_to)
            self.broker.ack([delivery])
            log.info("Task %s[%s] expired at %s; not run", msg.task, msg.id, msg.expires.isoformat())
            return None
        return msg, task

    # -- the run --------------------------------------------------------------------------
    def _run(self, delivery: Delivery, msg: TaskMessage, task: Task[Any, Any]) -> None:
        if self.canvas.duplicate(delivery, msg):
            self.broker.ack([delivery])
            log.info("Task %s[%s] is a second copy of a workflow step; acked without running", msg.task, msg.id)
            return
        acks_late = self.conf.task_acks_late if task.options.acks_late is None else task.options.acks_late
        if not acks_late:
            self.broker.ack([delivery])
        request = Request(
            id=msg.id, task=msg.task, args=msg.args, kwargs=msg.kwargs, retries=msg.retries, queue=delivery.queue,
            eta=msg.eta, expires=msg.expires, root_id=msg.root_id, parent_id=msg.parent_id,
            priority=msg.priority, headers=msg.headers,
        )
        log.info("Task %s[%s] received", msg.task, msg.id)
        if signals.task_received.receivers:
            signals.task_received.send(sender=task, request=request)
        if self.conf.task_track_started:
            self._store(msg.id, states.STARTED, None, reply_to=msg.reply_to)
        set_current_request(request)
        if signals.task_prerun.receivers:
            signals.task_prerun.send(
                sender=task, task_id=msg.id, task=task, args=msg.args, kwargs=msg.kwargs, request=request
            )
        start = time.perf_counter()
        limits = limits_of(msg.headers.get("timelimit"), task.options, self._app_limits)
        try:
            self._begin(msg, delivery.queue, limits)
            result = self._call(task, msg, limits)
        except Retry as retry:
            self._retry(delivery, msg, retry, acks_late)
            _postrun(task, request, None, states.RETRY)
            return
        except Terminated as exc:  # revoke(terminate=True) stopped it (-P gevent)
            if self._store(msg.id, states.REVOKED, "terminated", reply_to=msg.reply_to) and acks_late:
                self.broker.ack([delivery])
            log.warning("Task %s[%s] terminated (revoked with terminate=True)", msg.task, msg.id)
            if signals.task_revoked.receivers:
                signals.task_revoked.send(sender=task, request=request, terminated=True, signum=None, expired=False)
            _postrun(task, request, exc, states.REVOKED)
            return
        except Exception as exc:
            if isinstance(exc, task.options.autoretry_for) and not request.retries_exhausted:
                try:
                    task.retry(exc=exc)
                except Retry as retry:
                    self._retry(delivery, msg, retry, acks_late)
                    _postrun(task, request, None, states.RETRY)
                    return
                except Exception as final:
                    exc = final
            self._failed(delivery, msg, request, exc, time.perf_counter() - start, acks_late)
            if signals.task_failure.receivers:
                signals.task_failure.send(
                    sender=task, task_id=msg.id, exception=exc, args=msg.args, kwargs=msg.kwargs,
                    traceback=exc.__traceback__, request=request,
                    einfo="".join(traceback.format_exception(type(exc), exc, exc.__traceback__)),
                )
            _postrun(task, request, exc, states.FAILURE)
            return
        finally:
            self._end()
            set_current_request(None)
        runtime = time.perf_counter() - start
        children = self.canvas.after_success(msg, result) if msg.embed else []
        if children is None:
            return  # the result backend failed: the claim expires and the message runs again
        ignore = self.conf.task_ignore_result if task.options.ignore_result is None else task.options.ignore_result
        prepared = None
        if not ignore and self.backend is not None:
            try:
                prepared = self.backend.prepare(
                    msg.id, states.SUCCESS, result, children=children, reply_to=msg.reply_to
                )
            except (TypeError, ValueError, RecursionError) as exc:
                prepared = self.backend.prepare(
                    msg.id, states.FAILURE, exception_meta(exc), f"result not serializable: {exc}",
                    reply_to=msg.reply_to,
                )
        self._defer(prepared, delivery if acks_late else None)
        log.info("Task %s[%s] succeeded in %.4fs: %.200r", msg.task, msg.id, runtime, result)
        if signals.task_success.receivers:
            signals.task_success.send(sender=task, result=result, request=request, runtime=runtime)
        if signals.task_postrun.receivers:
            _postrun(task, request, result, states.SUCCESS)

    # -- what runs now, for others to see ---------------------------------------------------
    def _begin(self, msg: TaskMessage, queue: str, limits: Limits) -> None:
        """Show the task that starts, in the one place per task where it is written: the
        stats record (inspect active) and ``on_task`` (prefork: the slot the supervisor reads
        for the hard limit and terminate=True; -P gevent: the greenlet to stop). Straight
        calls, no signal: this runs for every task, whatever features are on."""
        stats = self.stats
        if stats is not None:
            headers = msg.headers
            stats.task_started(
                msg.id, msg.task, short(headers.get("argsrepr"), msg.args),
                short(headers.get("kwargsrepr"), msg.kwargs), queue, str(msg.priority),
            )
        self.on_task(msg.id, limits)

    def _end(self) -> None:
        self.on_task("", NO_LIMITS)
        if self.stats is not None:
            self.stats.task_finished()

    # -- deferred outcomes ----------------------------------------------------------------
    def _defer(self, prepared: tuple[str, bytes] | None, delivery: Delivery | None) -> None:
        with self._deferred_lock:
            first = not self._oldest
            if prepared is not None:
                self._results.append(prepared)
            if delivery is not None:
                self._acks.append(delivery)
            if first:
                self._oldest = time.monotonic()
        if first:
            self.on_first_deferred()  # the consumer's keeper flushes within FLUSH_AFTER

    @property
    def has_deferred(self) -> bool:
        return bool(self._oldest)

    @property
    def flush_due(self) -> bool:
        if not self._oldest:
            return False
        return len(self._acks) >= FLUSH_COUNT or time.monotonic() - self._oldest >= FLUSH_AFTER

    def flush(self) -> None:
        """Write deferred results, then ack their messages (results first: at-least-once).

        Safe from two threads: each call takes the deferred lists whole, so every batch
        keeps its own results-then-acks order."""
        acks = self.flush_results()
        if acks:
            try:
                self.broker.ack(acks)
            except BrokerError:
                self.keep_acks(acks)
                raise

    def flush_results(self) -> list[Delivery]:
        """Write deferred results; return the acks they made due, for the caller to send
        (the consumer carries them with its next fetch) or to hand back with ``keep_acks``.
        A failed write keeps the batch deferred and returns no ack."""
        with self._deferred_lock:
            results, acks = self._results, self._acks
            self._results, self._acks, self._oldest = [], [], 0.0
        if results:
            try:
                self.backend.store_many(results)
            except BackendError as exc:
                log.error("Result backend failed (%s); %d result(s) will be written again", exc, len(results))
                self._keep_deferred(results, acks)
                return []
        return acks

    def keep_acks(self, acks: list[Delivery]) -> None:
        """Acks not sent (or not known to be): the next flush sends them again."""
        self._keep_deferred([], acks)
        self.on_first_deferred()  # the consumer's keeper flushes within FLUSH_AFTER

    def _keep_deferred(self, results: list[tuple[str, bytes]], acks: list[Delivery]) -> None:
        """Put a batch that failed back in front, for the next flush. Its claims stay this
        process's: where another process keeps them alive (keeper.py), dropping the batch
        would keep those messages claimed, and never run again, for as long as this lives."""
        with self._deferred_lock:
            self._results[:0], self._acks[:0] = results, acks
            if not self._oldest:
                self._oldest = time.monotonic()

    def _call(self, task: Task[Any, Any], msg: TaskMessage, limits: Limits) -> Any:
        if limits is NO_LIMITS:  # the common call: no alarm to arm (arm and disarm would do nothing)
            result = task(*msg.args, **msg.kwargs)
        else:
            self.alarm.arm(limits)
            try:
                result = task(*msg.args, **msg.kwargs)
            finally:
                self.alarm.disarm()
        if inspect.iscoroutine(result):
            result = self._await(result, limits)
        return result

    def _await(self, result: Any, limits: Limits) -> Any:
        import asyncio  # only for async def tasks: a sync worker starts faster without it

        if self.shared_loop is not None:  # the pool's one loop
            request = current_request()
            run = limited(result, limits, lambda: set_current_request(request))
            future = asyncio.run_coroutine_threadsafe(run, self.shared_loop)
            try:
                result = future.result()
            except BaseException:  # the waiting slot was stopped (-P gevent terminate): so is the coroutine
                future.cancel()
                raise
        else:  # async def tasks run on this thread's own event loop
            if self._loop is None or self._loop.is_closed():
                self._loop = asyncio.new_event_loop()
            result = self._loop.run_until_complete(limited(result, limits))
        return result

    def _retry(self, delivery: Delivery, msg: TaskMessage, retry: Retry, acks_late: bool) -> None:
        args = msg.args if retry.args_override is None else retry.args_override  # self.retry(args=, kwargs=)
        kwargs = msg.kwargs if retry.kwargs_override is None else retry.kwargs_override
        pub = self.app.build_publication(
            msg.task, args, kwargs, task_id=msg.id, retries=msg.retries + 1, eta=retry.when,
            # Straight back to the queue it came from: routing again could reach every queue its exchange binds.
            queue=delivery.queue, exchange="", routing_key=delivery.queue,
            priority=msg.priority, expires=msg.expires, root_id=msg.root_id,
            parent_id=msg.parent_id, reply_to=msg.reply_to, **self.canvas.retry_options(msg),
        )
        self.broker.publish(pub.queue, pub.envelope, pub.eta)
        self._store(msg.id, states.RETRY, exception_meta(retry.exc) if retry.exc else None, reply_to=msg.reply_to)
        if acks_late:
            self.broker.ack([delivery])
        if signals.task_retry.receivers:
            signals.task_retry.send(
                sender=self.app.tasks.get(msg.task), request=msg, reason=retry.exc or retry, einfo=None,
            )
        log.info("Task %s[%s] retry %d in %.3gs: %r", msg.task, msg.id, msg.retries + 1, retry.countdown, retry.exc)

    def _failed(
        self, delivery: Delivery, msg: TaskMessage, request: Request, exc: BaseException, runtime: float, acked: bool
    ) -> None:
        tb = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
        if msg.embed and not self.canvas.after_failure(msg, exception_meta(exc), tb):
            return  # the result backend failed: the claim expires and the message runs again
        if request.retries_exhausted and acked:
            # Dead-letter before storing FAILURE: whoever sees the failure finds the message kept.
            self.broker.dead_letter(delivery, f"retries exhausted after {msg.retries}: {exc!r}")
            self._store(msg.id, states.FAILURE, exception_meta(exc), tb, reply_to=msg.reply_to)
        elif self._store(msg.id, states.FAILURE, exception_meta(exc), tb, reply_to=msg.reply_to) and acked:
            self.broker.ack([delivery])
        log.error("Task %s[%s] failed in %.4fs: %s", msg.task, msg.id, runtime, _REPR.repr(exc))

    # -- checks ---------------------------------------------------------------------------
    def _redelivered_too_often(self, delivery: Delivery, task_id: str) -> bool:
        count = delivery.redeliveries
        if count and not self.broker.counts_redeliveries and self.backend is not None:
            count = self.backend.incr(DELIVERY_COUNT_PREFIX + task_id)
        if count <= self.conf.max_deliveries:
            return False
        reason = f"redelivered {count} times (max_deliveries={self.conf.max_deliveries}): it may crash its worker"
        self._dead_letter(delivery, reason, task_id or "?")
        if task_id:
            failure = {"exc_type": "WorkerLostError", "exc_message": [reason], "exc_module": "taskq.errors"}
            self.canvas.given_up(delivery, failure)  # its chord must not wait for it forever
            self._store(task_id, states.FAILURE, failure)
        return True

    def _rate_limited(self, delivery: Delivery, msg: TaskMessage) -> bool:
        """Too early for its task's rate: a delayed copy goes back for its reserved time and
        the original is acked, so this worker runs other tasks meanwhile."""
        wait = self.rates.wait(msg.task, msg.id)
        if wait <= 0 or delivery.envelope is None:
            return False
        self.broker.publish(delivery.queue, delivery.envelope, time.time() + wait)
        self.broker.ack([delivery])
        log.debug("Task %s[%s] rate limited: runs in %.3fs", msg.task, msg.id, wait)
        return True

    def _replayed(self, delivery: Delivery, msg: TaskMessage) -> bool:
        """True when the message must not run: a replay (dead-lettered), or its replay
        memory is unreachable (the claim is left to expire, as for a result-backend failure)."""
        try:
            if not self.replays.seen_before(delivery, msg):
                return False
        except BackendError as exc:
            log.error("Replay memory unreachable for %s (%s); the message will be delivered again", msg.id, exc)
            return True
        self._dead_letter(delivery, "replayed: this signed message was started before (a copy)", msg.id)
        return True

    def release(self, delivery: Delivery) -> None:
        """A started delivery goes back to its queue uncounted: its next run is no replay."""
        if delivery.envelope is not None:
            try:
                self.canvas.release(delivery.envelope.headers)
            except BackendError as exc:
                log.warning("Could not clear the step mark of %s (%s)", delivery.envelope.id, exc)
        if self.signer is not None and delivery.envelope is not None:
            try:
                self.replays.forget(delivery.envelope.headers)
            except BackendError as exc:
                log.warning("Could not clear the replay mark of %s (%s)", delivery.envelope.id, exc)

    def _already_finished(self, msg: TaskMessage) -> bool:
        if self.backend is None:
            return False
        try:
            return self.backend.get_meta(msg.id)["status"] in states.READY_STATES  # type: ignore[no-any-return]
        except BackendError:
            return False

    # -- outcomes -------------------------------------------------------------------------
    def _dead_letter(self, delivery: Delivery, reason: str, task_id: str) -> None:
        self.broker.dead_letter(delivery, reason)
        log.error("Message %s from queue %s dead-lettered: %s", task_id, delivery.queue, reason)
        if signals.task_rejected.receivers:
            signals.task_rejected.send(sender=None, message=delivery, exc=reason, task_id=task_id)

    def _store(self, task_id: str, state: str, result: Any, tb: str | None = None, reply_to: str = "") -> bool:
        """Write the state (``reply_to``: the message's, where rpc:// sends it); False when
        the backend failed (the claim is then left to expire)."""
        backend = self.backend
        if backend is None:
            return True
        try:
            backend.store(task_id, state, result, tb, reply_to=reply_to)
        except BackendError as exc:
            log.error("Result backend failed for %s (%s); the message will be delivered again", task_id, exc)
            return False
        return True
