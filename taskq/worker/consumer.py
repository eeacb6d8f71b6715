"""The consumer: one fetch-and-run loop, plus a keeper thread that holds its claims.

The loop fetches a batch only when it has nothing left to run. The batch starts at
``prefetch`` and doubles (up to ``worker_prefetch_max``) while every task of the last batch
finished within FAST_TASK: fast tasks then cost a fraction of a round trip each. It never
claims more than ``worker_prefetch_bytes`` of messages at once, sized by the largest message
of the previous batch: big arguments take fewer per fetch, so memory stays bounded. A long
task never strands the messages claimed behind it: once the running task has taken
``worker_hold_limit`` seconds, the keeper hands the unstarted ones back to the queue for
other workers, and the batch falls back to ``prefetch``; on a broker that pushes messages
ahead of a fetch (RabbitMQ's prefetch), those go back too, and the pushing stops until the
next fetch.

The keeper also extends the claims of everything held (prefetched and running) every third
of the recovery time, so a long task is never delivered twice while its worker lives; on a
warm shutdown it hands unstarted messages back at once; on a cold one it hands back
everything, the running task included, and ends the process.

Remote control reaches the loop between fetches (``steering``: the queues to fetch from,
rate limits), and the loop shows what it holds for ``inspect reserved`` (``stats``: the
batch once per fetch, one integer per task started). Both are None outside ``taskq worker``.
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

from taskq.app import TaskQ
from taskq.brokers.base import AcksWithFetch, ClaimsByOwner, Delivery, InterruptibleFetch, PushesAhead
from taskq.errors import BackendError, BrokerError
from taskq.worker.heartbeat import Heartbeat
from taskq.worker.runner import FLUSH_AFTER, TaskRunner

if TYPE_CHECKING:
    from taskq.control.stats import SharedStats
    from taskq.control.steering import Steering

log = logging.getLogger("taskq.worker")
FETCH_TIMEOUT = 1.0  # bounds how long a stop request waits for an idle fetch (unless it interrupts it)
FAST_TASK = 0.01  # seconds; a batch of tasks this fast lets the next batch double
# A fetch brings about this many message bytes at most, whatever worker_prefetch_bytes allows.
# Big messages leave Redis in a bare XREADGROUP (RedisBroker._claim), whose cost per byte grows
# with the reply only past a few MB, while each fetch costs both sides a round trip and an ack
# call. With 512 KB, 100 KB arguments drained at 86-90% of raw GET and 1 MB ones at 52-57%;
# with 4 MB at 109-124% and 76-82%; 8 and 16 MB no better (docs/performance.md, "A fetch brings").
FETCH_BYTES = 4096 * 1024


def message_bytes(delivery: Delivery) -> int:
    """What a claimed message costs this process: its body (headers are small and bounded)."""
    return len(delivery.envelope.body) if delivery.envelope else len(delivery.raw or b"")


class Consumer:
    def __init__(self, app: TaskQ, queues: Sequence[str], prefetch: int = 1) -> None:
        self.app = app
        self.queues = list(queues)
        self.prefetch = max(1, prefetch)
        self.batch = self.prefetch
        self.batch_max = max(self.prefetch, app.conf.worker_prefetch_max)
        self.hold_limit = app.conf.worker_hold_limit
        self.prefetch_bytes = max(0, int(app.conf.worker_prefetch_bytes))
        self._message_bytes = 0  # the largest message of the last batch
        self._started_at = 0.0  # when the running task started (monotonic)
        self._all_fast = False  # the last fetch brought tasks, and all finished within FAST_TASK
        self.broker = app.broker
        self._pusher = self.broker if isinstance(self.broker, PushesAhead) else None
        self._acking = self.broker if isinstance(self.broker, AcksWithFetch) else None
        self._released_for = -1.0  # the start time of the task whose hold limit was acted on
        self._keeper_until = 0.0  # when the keeper thread wakes next (monotonic)
        self.runner = TaskRunner(app, self.broker)
        self._lock = threading.Lock()
        self._pending: deque[Delivery] = deque()
        self._running: Delivery | None = None
        self.stop_requested = threading.Event()
        self.cold = False
        self._wake = threading.Event()
        self._done = threading.Event()
        self.processed = 0
        self.unexpected_errors = 0  # exceptions that reached this loop: bugs, never bad input
        self._heartbeat = Heartbeat(app.conf.heartbeat_path)
        self.runner.on_first_deferred = self._keeper_flushes
        self.after_task: Callable[[], str | None] = lambda: None  # prefork recycling: why to end now
        self.recycled: str | None = None
        # prefork: held while handing messages back, so the supervisor kills before or after (handback.py)
        self.handback: Callable[[], contextlib.AbstractContextManager[object]] = contextlib.nullcontext
        # Remote control (taskq/control): what it changes, and where it reads what is held.
        self.steering: Steering | None = None
        self._steered = 0  # the steering sequence number applied last
        self._rates: dict[str, str] = {}  # the rates remote control set, as applied here
        self.stats: SharedStats | None = None
        self._held_at: int | None = None  # this consumer's record in stats
        self._taken = 0
        self._holding = False  # the record holds lines (a batch of more than one): starts are counted

    # -- control (called from signal handlers or other threads) --------------------------
    def warm_stop(self) -> None:
        self.stop_requested.set()
        self._wake.set()
        if isinstance(self.broker, InterruptibleFetch):
            self.broker.interrupt_fetch()  # an idle fetch that waits longer than FETCH_TIMEOUT ends now

    def cold_stop(self) -> None:
        self.cold = True
        self.warm_stop()

    def _fetch_timeout(self) -> float:
        if isinstance(self.broker, InterruptibleFetch):
            return self.broker.fetch_timeout(self.queues, FETCH_TIMEOUT)
        return FETCH_TIMEOUT

    def fetch_count(self) -> int:
        """The batch, cut so that messages as large as the last batch's largest fit within
        ``worker_prefetch_bytes`` and FETCH_BYTES (at least one: a message larger than the
        cap still runs); a cap of 0 cuts nothing."""
        if not self.prefetch_bytes or not self._message_bytes:  # 0: no cut at all
            return self.batch
        return max(1, min(self.batch, min(self.prefetch_bytes, FETCH_BYTES) // self._message_bytes))

    # -- the loop -------------------------------------------------------------------------
    def run(self) -> None:
        keeper = threading.Thread(target=self._keep_claims, name="taskq-claim-keeper", daemon=True)
        keeper.start()
        self.runner.stats = self.stats  # the runner writes the running task's record
        if self.stats is not None:
            self._held_at = self.stats.my_record()
        held_at, take = self._held_at, (self.stats.take if self.stats is not None else None)
        backoff = 0.5
        try:
            while not self.stop_requested.is_set():
                with self._lock:
                    delivery = self._pending.popleft() if self._pending else None
                    self._running = delivery
                    self._started_at = time.monotonic()
                    if delivery is not None and self._holding and held_at is not None and take is not None:
                        self._taken += 1
                        take(held_at, self._taken)  # one integer written: inspect reserved
                if delivery is None:
                    if self.steering is not None and self.steering.sequence != self._steered:
                        self._steer(self.steering)  # between fetches: queues and rates apply to the next batch
                    acks: list[Delivery] = []
                    if self._acking is not None:  # the results now; their acks ride with the fetch
                        acks = self.runner.flush_results()
                    else:
                        self._flush()
                    # Now, not when the next task arrives: the read is then off its way.
                    self.runner.revocations.refresh_ahead()
                    self.batch = min(self.batch * 2, self.batch_max) if self._all_fast else self.prefetch
                    count, timeout = self.fetch_count(), self._fetch_timeout()
                    try:
                        if acks and self._acking is not None:
                            batch = self._acking.fetch_acking(acks, self.queues, count, timeout)
                        else:
                            batch = self.broker.fetch(self.queues, count, timeout)
                    except Exception as exc:  # a fetch that fails is retried, never fatal
                        if isinstance(exc, BrokerError):
                            log.warning("Broker unavailable (%s); retrying in %.1fs", exc, backoff)
                        else:  # a bug: brokers turn a bad message into an undecodable Delivery
                            self.unexpected_errors += 1
                            log.exception("Unexpected error fetching messages; retrying in %.1fs", backoff)
                        self.stop_requested.wait(backoff)
                        backoff = min(backoff * 2, 10.0)
                        continue
                    finally:
                        if acks:  # not acked, or not known to be: sent again by the next flush
                            self.runner.keep_acks(acks)
                    backoff = 0.5
                    self._heartbeat.beat()
                    self._all_fast = bool(batch)  # an idle worker's batch does not grow
                    if batch:
                        self._message_bytes = max(message_bytes(d) for d in batch)
                    with self._lock:
                        self._pending.extend(batch)
                        self._held(batch)
                        if self.stop_requested.is_set():
                            break
                        # The keeper would sleep past the hold limit of what waits behind the first
                        wake = (len(batch) > 1 or (batch and self._pusher is not None)) and self._keeper_until > (
                            time.monotonic() + self.hold_limit
                        )
                    if wake:
                        self._wake.set()
                    continue
                if self.runner.flush_due:
                    self._flush()
                try:
                    self.runner.handle(delivery)
                except (BrokerError, BackendError) as exc:
                    log.error("%s while handling a message; it will be delivered again", exc)
                    self._abandon(delivery)
                except Exception:  # one message must never end the loop
                    # A bug, not an input (the runner dead-letters bad input): the claim
                    # lapses and the redelivery is counted, so max_deliveries ends any loop.
                    self.unexpected_errors += 1
                    log.exception("Unexpected error handling a message; it will be delivered again")
                    self._abandon(delivery)
                self.processed += 1
                with self._lock:
                    self._running = None
                    if time.monotonic() - self._started_at > FAST_TASK:
                        self._all_fast = False
                self.recycled = self.after_task()
                if self.recycled:
                    break  # the finally below flushes and hands unstarted messages back
        except BaseException:  # the task ended this consumer (SystemExit...): its message comes back counted
            with self._lock:
                running = self._running
            if running is not None:
                self._abandon(running)
            raise
        finally:
            self._flush()
            self._give_back(running_too=False)
            self._done.set()
            self._wake.set()
            keeper.join(timeout=5)

    def _keeper_flushes(self) -> None:
        """A finished task's outcome waits to be written (called in the loop's thread): the
        keeper writes it within FLUSH_AFTER if the loop goes on to another task, which may
        run long. With nothing pending the loop flushes before its next fetch, at once, so
        the keeper is left asleep (waking it cost each task of an idle worker two thread
        switches, one as the loop wrote the ack and fetched again)."""
        if self._pending:
            self._wake.set()

    def _steer(self, steering: Steering) -> None:
        """Apply what remote control changed: the queues to fetch from and the rate limits."""
        self._steered, wanted = steering.read()
        if wanted.queues != self.queues:
            log.info("Consuming from %s", ",".join(wanted.queues))
            self.queues = wanted.queues
        for task_name, rate in wanted.rates.items():
            if self._rates.get(task_name) != rate:
                self.runner.rates.set_rate(task_name, rate)
                self._rates[task_name] = rate
                log.info("Rate limit of %s now %s", task_name, rate if rate != "0" else "none")

    def _held(self, batch: Sequence[Delivery]) -> None:
        """Show what this consumer holds (inspect reserved); called under the lock. The loop
        fetches only when nothing is pending, so a batch of one starts at the loop's next
        turn: it is never reserved behind anything, and writing its line and then taking it
        (3 µs on an idle worker's way from the wake-up to the task) would show nothing
        anyway. Such a batch only empties a record that still holds lines."""
        if self._held_at is None or self.stats is None:
            return
        self._taken = 0
        if len(batch) > 1:
            self.stats.hold(self._held_at, batch)
            self._holding = True
        elif self._holding:
            self.stats.hold(self._held_at, ())
            self._holding = False

    def _flush(self) -> None:
        try:
            self.runner.flush()
        except BrokerError as exc:
            log.error("Broker failed acknowledging finished tasks (%s); the acks will be sent again", exc)

    def _give_back(self, running_too: bool) -> None:
        with self._lock:
            items = list(self._pending)
            self._pending.clear()
            self._held(())
            running = self._running if running_too else None
        if running is not None:
            self.runner.release(running)  # signed: its next delivery is not a replay
            items.append(running)
        self._return(items, "unstarted")

    def _return(self, items: list[Delivery], why: str) -> None:
        """Hand claimed messages back to the queue at once (not counted as redeliveries)."""
        if not items:
            return
        try:
            with self.handback():
                self.broker.requeue(items)
            log.info("Returned %d %s message(s) to the queue", len(items), why)
        except BrokerError as exc:
            log.warning("Could not return %d message(s) (%s); their claims will expire", len(items), exc)
        except Exception:  # a bug: the keeper thread must live on; the claims expire
            self.unexpected_errors += 1
            log.exception("Unexpected error returning %d message(s); their claims will expire", len(items))

    def _abandon(self, delivery: Delivery) -> None:
        """Let a claim that this consumer will not settle lapse now, counted as a redelivery.
        Waiting for it to expire would wait forever where another process keeps this
        process's claims alive (keeper.py); a broker without that keeps its own expiry."""
        if not isinstance(self.broker, ClaimsByOwner):
            return
        try:
            self.broker.abandon([delivery])
        except Exception as exc:  # the broker is away: the claim stays until this process ends
            log.warning("Could not give up the claim of a message (%s); it returns when this worker ends", exc)

    def _keep_claims(self) -> None:
        """Extend claims every third of the recovery time; flush deferred outcomes within
        FLUSH_AFTER even while the loop runs a long task; act on shutdown requests."""
        interval = max(self.app.conf.recovery_time / 3.0, 0.05)
        next_extend = time.monotonic() + interval
        returned = False
        while not self._done.is_set():
            deadlines = [next_extend]
            if self.runner.has_deferred:
                deadlines.append(time.monotonic() + FLUSH_AFTER)
            with self._lock:  # the loop reads _keeper_until under it when it adds a batch
                if self._holds_behind():
                    deadlines.append(self._started_at + self.hold_limit)
                self._keeper_until = min(deadlines)
            self._wake.wait(max(self._keeper_until - time.monotonic(), 0.001))
            self._wake.clear()
            if self.cold:
                self._give_back(running_too=True)
                log.warning("Cold shutdown: running task abandoned and returned to the queue")
                os._exit(1)
            if self.stop_requested.is_set() and not returned:
                self._give_back(running_too=False)
                returned = True
            if self.runner.flush_due:
                self._flush()
            self._release_if_held_too_long()
            if time.monotonic() >= next_extend:
                next_extend = time.monotonic() + interval
                self._extend_held()

    def _holds_behind(self) -> bool:
        """Messages may wait behind the running task: claimed by this consumer, or pushed to
        this process by a broker that pushes ahead (not acted on yet for this task)."""
        if self._running is None:
            return False
        return bool(self._pending) or (self._pusher is not None and self._released_for != self._started_at)

    def _release_if_held_too_long(self) -> None:
        """A long task must not strand the messages waiting behind it: give them back."""
        with self._lock:
            if not self._holds_behind() or time.monotonic() - self._started_at < self.hold_limit:
                return
            items = list(self._pending)
            self._pending.clear()
            if items:
                self._held(())
                self._all_fast = False
            pusher = self._pusher if self._released_for != self._started_at else None
            self._released_for = self._started_at
        self._return(items, "unstarted (held behind a long task)")
        if pusher is not None:
            self._release_pushed(pusher)

    def _release_pushed(self, pusher: PushesAhead) -> None:
        try:
            with self.handback():
                pusher.release_pushed()
        except BrokerError as exc:
            log.warning("Could not return messages pushed ahead (%s); they wait for this worker", exc)
        except Exception:  # a bug: the keeper thread must live on
            self.unexpected_errors += 1
            log.exception("Unexpected error returning messages pushed ahead")

    def _extend_held(self) -> None:
        with self._lock:
            held = list(self._pending) + ([self._running] if self._running else [])
        if held:
            try:
                self.broker.extend(held)
                self._heartbeat.beat()
            except BrokerError as exc:
                log.warning("Could not extend claims (%s)", exc)
            except Exception:  # a bug: the keeper thread must live on
                self.unexpected_errors += 1
                log.exception("Unexpected error extending claims")
