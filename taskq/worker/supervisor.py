"""The prefork pool: a supervisor and N forked children that each fetch for themselves.

No message passes through the supervisor. It forks children, restarts those that die
(with a back-off so a child that crashes at start does not spin), forwards shutdown
signals, enforces the warm-shutdown grace period, and keeps its children's claims alive:
each child publishes its claim owner in a shared slot (slots.py), and the supervisor
extends that owner's claims every third of the recovery time. A child's own keeper thread
does the same, but a task that holds the GIL (one long C call) starves it; the supervisor
runs no task code, so a task of any length runs once. Children die with their parent
(PR_SET_PDEATHSIG), so a SIGKILLed supervisor leaves no orphans holding claims.
Remote control's pool_grow/pool_shrink change how many children it keeps (steering.py):
new ones are forked, the newest are given a warm stop and not replaced.
"""

from __future__ import annotations

import functools
import logging
import os
import signal
import time
from collections.abc import Callable, Sequence
from types import FrameType
from typing import TYPE_CHECKING

from taskq import signals
from taskq.app import TaskQ
from taskq.brokers.base import ClaimsByOwner
from taskq.events.sender import flush_all as flush_events
from taskq.worker.consumer import Consumer
from taskq.worker.heartbeat import DeadConsumers
from taskq.worker.keeper import claimed_queues, die_with_parent, extend_owners, fork_sharing, keep_interval
from taskq.worker.ratelimit import RateLimiter, SharedClocks
from taskq.worker.recycling import RECYCLED, Recycler
from taskq.worker.restarts import LIMIT, RestartPolicy
from taskq.worker.slots import ChildSlots
from taskq.worker.timelimits import Limits
from taskq.worker.watchdog import Watchdog

if TYPE_CHECKING:
    from taskq.control.stats import SharedStats
    from taskq.control.steering import Steering

log = logging.getLogger("taskq.worker")
SHUTDOWN_SIGNALS = frozenset({signal.SIGTERM, signal.SIGINT, signal.SIGQUIT})
BEAT_SLOT = -1
OUTBOX_SLOT = -2  # service slots are negative: they run no consumer


class PreforkPool:
    def __init__(
        self, app: TaskQ, queues: Sequence[str], concurrency: int, prefetch: int, beat: bool = False,
        recycle: tuple[int, int] = (0, 0),
        outbox: bool = False, steering: Steering | None = None, stats: SharedStats | None = None,
    ) -> None:
        self.app = app
        self.queues = list(queues)
        self.steering = steering  # remote control: pool_grow/pool_shrink start/stop children
        self.stats = stats
        self._steered = steering.sequence if steering is not None else 0  # the size it starts with
        self._claimed = list(queues)  # queues whose claims the supervisor keeps (grows with add_consumer)
        self.concurrency = max(1, concurrency)
        self.prefetch = prefetch
        # Slots 0..N-1 run consumers; with --beat one more child runs the scheduler, with
        # --outbox one the outbox relay, so the supervisor itself never has a thread when it forks.
        self.slots = list(range(self.concurrency)) + ([BEAT_SLOT] if beat else []) + ([OUTBOX_SLOT] if outbox else [])
        self.children: dict[int, int] = {}  # pid -> slot
        self._signals = 0
        self._warm_sent_at: float | None = None
        self._cold_sent_at: float | None = None
        self._restarts: dict[int, float] = {}  # slot -> earliest next start
        self._slots = ChildSlots(steering.ceiling if steering is not None else self.concurrency)
        self._keep_every = keep_interval(app)
        self._next_keep = 0.0
        self._broker_open = False  # this process has a broker connection (for _keep_claims)
        self._started: dict[int, float] = {}  # slot -> when its child was forked
        self._crashes = RestartPolicy()
        self._dead = DeadConsumers(app.conf.heartbeat_path)
        self._lost_all = False
        self._watchdog = Watchdog(app, self._slots)
        self._clocks = SharedClocks()  # one rate per task name for all children (Celery's per worker)
        self._recycle = recycle  # (max tasks, max memory KiB) per child; 0: no limit
        self._killed: set[int] = set()  # pids the watchdog killed: replaced at once, no crash

    # -- children -------------------------------------------------------------------------
    def _spawn(self, slot: int) -> None:
        parent = os.getpid()
        if slot >= 0:
            self._slots.clear(slot)  # until the new child publishes its own owner
        if self._broker_open:  # a child must not inherit connections (SQLite forbids it)
            self.app.broker.close()
            self._broker_open = False
        self._watchdog.close()
        # Signals stay blocked across the fork until the child has its own handlers, so a
        # shutdown signal sent to a just-forked child is delivered late, never lost.
        previous = signal.pthread_sigmask(signal.SIG_BLOCK, SHUTDOWN_SIGNALS)
        pid = fork_sharing()
        if pid:
            signal.pthread_sigmask(signal.SIG_SETMASK, previous)
            self.children[pid] = slot
            self._started[slot] = time.monotonic()
            self._dead.up(slot)
            return
        code = 0
        try:
            die_with_parent()
            if os.getppid() != parent:  # the parent died before prctl took effect
                os._exit(1)
            code = self._child_main(slot)
        except BaseException:  # a child must never return into the parent's code
            log.exception("Pool worker %d crashed", slot + 1)
            code = 1
        finally:
            flush_events()  # os._exit skips atexit: the last task-succeeded would be lost
            try:
                self.app.close()  # e.g. RabbitMQ hands channel-prefetched messages back unmarked
            except Exception:
                log.debug("closing the broker at exit failed", exc_info=True)
            logging.shutdown()
            os._exit(code)

    def _child_main(self, slot: int) -> int:
        """Run the child's consumer (or beat); the exit status: 0, or RECYCLED."""
        import threading

        if slot == BEAT_SLOT:
            self._beat_main()
            return 0
        if slot == OUTBOX_SLOT:
            self._outbox_main()
            return 0
        threading.current_thread().name = f"ForkPoolWorker-{slot + 1}"
        if signals.worker_process_init.receivers:  # Celery sends it in each pool process
            signals.worker_process_init.send(sender=None)
        consumer = Consumer(self.app, self.queues, self.prefetch)
        consumer.steering, consumer.stats = self.steering, self.stats
        consumer.handback = functools.partial(self._slots.handback.held, slot)
        broker = self.app.broker
        if isinstance(broker, ClaimsByOwner) and not self._slots.publish_owner(slot, broker.claim_owner):
            log.warning("Claim owner %r is too long for the supervisor to keep its claims", broker.claim_owner)
        runner = consumer.runner
        runner.alarm.hard_in_process = False  # the supervisor kills at the hard limit

        def publish(task_id: str, limits: Limits) -> None:
            hard = limits.hard or 0.0
            self._slots.publish_task(slot, task_id, time.monotonic() + hard if hard else 0.0, hard)

        runner.on_task = publish
        runner.rates = RateLimiter(self.app, self._clocks)
        recycler = Recycler(*self._recycle)
        if recycler.active:
            consumer.after_task = recycler.after_task
        signal.signal(signal.SIGTERM, lambda s, f: consumer.warm_stop())
        signal.signal(signal.SIGQUIT, lambda s, f: consumer.cold_stop())
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # the supervisor decides what Ctrl-C means
        signal.pthread_sigmask(signal.SIG_UNBLOCK, SHUTDOWN_SIGNALS)
        consumer.run()
        if consumer.recycled:
            log.info("Pool worker %d %s: a fresh one takes its place", slot + 1, consumer.recycled)
            return RECYCLED
        return 0

    def _beat_main(self) -> None:
        import threading

        from taskq.beat.schedulers import BlockingScheduler

        threading.current_thread().name = "Beat"
        scheduler = BlockingScheduler(app=self.app)
        signal.signal(signal.SIGQUIT, lambda s, f: scheduler.core.stop())
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.pthread_sigmask(signal.SIG_UNBLOCK, SHUTDOWN_SIGNALS)
        scheduler.start()  # its own SIGTERM handler stops the loop

    def _outbox_main(self) -> None:
        import threading

        from taskq.transactional import relay_until

        threading.current_thread().name = "OutboxRelay"
        stop = threading.Event()
        for sig in (signal.SIGTERM, signal.SIGQUIT):  # the batch in flight finishes first
            signal.signal(sig, lambda s, f: stop.set())
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.pthread_sigmask(signal.SIG_UNBLOCK, SHUTDOWN_SIGNALS)
        relay_until(self.app, stop)

    # -- supervision ----------------------------------------------------------------------
    def _keep_claims(self) -> None:
        """Extend the claims of every live child from here, outside the children's GIL."""
        broker = self.app.broker
        if not isinstance(broker, ClaimsByOwner):
            return
        # Children reaped are gone from self.children; a new one publishes before it fetches.
        owners = [self._slots.owner(slot) for slot in self.children.values() if slot >= 0]
        consumers = [pid for pid, slot in self.children.items() if slot >= 0]
        if self.stats is not None and self.stats.hold_nothing(consumers):
            # An idle pool's round would read the claims index for nothing (a command every
            # third of the recovery time). A claim made just after this look is a round
            # younger than its expiry, and its child's own keeper extends it too.
            return
        if any(owners):
            self._broker_open = True
            extend_owners(broker, filter(None, owners), claimed_queues(self._claimed, self.steering))

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        self._signals += 1

    def _send(self, sig: int) -> None:
        for pid in list(self.children):
            try:
                os.kill(pid, sig)
            except ProcessLookupError:
                pass

    def _reap(self, stopping: bool) -> None:
        while self.children:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                self.children.clear()
                return
            if pid == 0:
                return
            slot = self.children.pop(pid, None)
            if slot is None or stopping:
                continue
            if slot not in self.slots:  # pool_shrink stopped it
                self._slots.clear(slot)
                continue
            code = os.waitstatus_to_exitcode(status)
            if pid in self._killed or code == RECYCLED:  # the watchdog's doing, or recycled: replace now
                self._killed.discard(pid)
                self._slots.clear(slot)
                continue
            name = {BEAT_SLOT: "Beat", OUTBOX_SLOT: "Outbox relay"}.get(slot, f"Pool worker {slot + 1}")
            if slot >= 0:
                self._watchdog.lost(slot, code)  # task_reject_on_worker_lost=False: FAILURE, not rerun
                self._dead.down(slot, f"exited with {code}")
                if self._crashes.crashed(slot, self._started.get(slot, 0.0)) is None:
                    self._give_up(slot)
                    continue
            log.error("%s (pid %d) exited with %s; starting a new one", name, pid, code)
            last = self._restarts.get(slot, 0.0)
            self._restarts[slot] = max(time.monotonic(), last) + (1.0 if time.monotonic() - last < 5 else 0.0)

    def _give_up(self, slot: int) -> None:
        """A child that dies at start again and again is not started again (restarts.py);
        once no consumer is left the pool stops and exits 1."""
        log.error("Pool worker %d died %d times in a row at start; not started again", slot + 1, LIMIT)
        self.slots.remove(slot)
        if all(s < 0 for s in self.slots):
            log.error("Every pool worker is dead; the worker exits")
            self._lost_all = True
            self._signals = max(self._signals, 1)  # a warm shutdown of what is left (beat, relay)

    def _resize(self, steering: Steering) -> None:
        """Start or warm-stop children until as many consumers run as remote control wants."""
        self._steered, wanted = steering.read()
        consumers = sorted(s for s in self.slots if s >= 0)
        for slot in reversed(consumers[wanted.size :]):  # shrink: the newest go first
            self.slots.remove(slot)
            self._restarts.pop(slot, None)
            self._dead.up(slot)
            for pid in [p for p, s in self.children.items() if s == slot]:
                os.kill(pid, signal.SIGTERM)  # a warm stop: it finishes its task, hands back the rest
        taken = set(self.slots) | set(self.children.values())
        free = (s for s in range(steering.ceiling) if s not in taken)
        for _ in range(wanted.size - len(consumers)):  # grow: the loop below starts them
            start = next(free, None)
            if start is None:  # every slot up to the ceiling is taken, by children still stopping too
                log.warning("Pool cannot grow now: children stopped by pool_shrink still finish their tasks")
                break
            self.slots.append(start)
        if wanted.size != len(consumers):
            log.info("Pool size now %d (was %d)", wanted.size, len(consumers))

    def run(self, on_ready: Callable[[], None] = lambda: None) -> int:
        for sig in SHUTDOWN_SIGNALS:
            signal.signal(sig, self._on_signal)
        for slot in self.slots:
            self._spawn(slot)
        on_ready()
        grace = self.app.conf.worker_shutdown_timeout
        while True:
            stopping = self._signals > 0
            self._reap(stopping)
            now = time.monotonic()
            if not stopping or self._warm_sent_at is not None:  # limits hold during a warm shutdown too
                # A child killed a turn ago may not be reaped yet: killing (and recording) it twice is wrong.
                watched = {p: s for p, s in self.children.items() if p not in self._killed}
                self._killed.update(kill.pid for kill in self._watchdog.check(watched))
            if now >= self._next_keep:
                self._next_keep = now + self._keep_every
                self._keep_claims()
            if not stopping and self.steering is not None and self.steering.sequence != self._steered:
                self._resize(self.steering)
            if not stopping:
                for slot in set(self.slots) - set(self.children.values()):
                    if self._restarts.get(slot, 0.0) <= now:
                        self._spawn(slot)
            elif self._warm_sent_at is None:
                log.info("Warm shutdown: children finish running tasks (grace %.0fs)", grace)
                self._send(signal.SIGTERM)
                self._warm_sent_at = now
            elif self._cold_sent_at is None and (self._signals > 1 or now - self._warm_sent_at > grace):
                log.warning("Cold shutdown: running tasks go back to the queue")
                self._send(signal.SIGQUIT)
                self._cold_sent_at = now
            elif self._cold_sent_at is not None and now - self._cold_sent_at > 10:
                self._send(signal.SIGKILL)
            if stopping and not self.children:
                self._dead.clear()
                return 1 if self._lost_all else 0
            time.sleep(0.05)
