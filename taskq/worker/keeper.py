"""Keeping a worker's claims alive from outside the GIL of the tasks it runs.

A task that holds the GIL in one long C call (a huge ``sum``, a regex that backtracks, a C
extension that does not release it) stops every other thread of its process, the
consumer's claim keeper thread too; past about 0.6 x the recovery time its claim would
expire and the message run a second time elsewhere. So claims are also extended from
another process, by owner name (``ClaimsByOwner``: sqlite, Redis, PostgreSQL):

* prefork: the supervisor, for the owners its children publish in their slots (supervisor.py);
* threads and solo: a small keeper process forked at start (``KeeperProcess``), for the
  worker process's own owner, for as long as that process lives.

Neither runs task code, so a task of any length runs once while its worker lives.
"""

from __future__ import annotations

import ctypes
import gc
import logging
import os
import signal
import sys
import threading
import time
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING

from taskq.app import TaskQ
from taskq.brokers.base import ClaimsByOwner
from taskq.errors import BrokerError

if TYPE_CHECKING:
    from taskq.control.steering import Steering

log = logging.getLogger("taskq.worker")
PR_SET_PDEATHSIG = 1


def die_with_parent() -> None:
    """Linux: this process gets SIGKILL when the thread that forked it ends."""
    if sys.platform.startswith("linux"):
        try:
            ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
        except (OSError, AttributeError):
            pass


# Held by a thread of a process that forks while it uses objects the children use too (a
# prefork supervisor's control thread answering a command or a metrics scrape: the app's
# broker, the revocation store): a lock of theirs held at the fork would stay held in the
# child for good.
FORK_GUARD = threading.Lock()


def fork_sharing() -> int:
    """``os.fork()``, with every object the garbage collector tracks moved first into its
    permanent generation (``gc.freeze``), which no collection visits. A collection writes
    into the header of each object it visits: a full one in a forked child would copy every
    page of the heap it shares with its parent (measured: +9 MB of private memory per prefork
    child, docs/performance.md "Idle memory"). The collection before it leaves no garbage of
    the parent's to be frozen with the rest; after the first fork it visits only the objects
    made since the last one."""
    with FORK_GUARD:
        gc.collect()
        gc.freeze()
        return os.fork()


def keep_interval(app: TaskQ) -> float:
    """Claims are extended every third of the recovery time (as the keeper thread does)."""
    return max(app.conf.recovery_time / 3.0, 0.05)


def extend_owners(broker: ClaimsByOwner, owners: Iterable[str], queues: Sequence[str]) -> None:
    """Extend every claim of each owner; a broker error ends the round (the next one retries,
    and the owners' own keeper threads keep trying meanwhile)."""
    for owner in owners:
        try:
            broker.extend_owner(owner, queues)
        except BrokerError as exc:
            log.warning("Could not extend the claims of %s (%s)", owner, exc)
            return


def claimed_queues(queues: list[str], steering: Steering | None) -> list[str]:
    """The queues whose claims to keep: every queue consumed since start, those remote
    control added too (a queue cancelled later may still have claimed messages running)."""
    if steering is not None:
        queues.extend(q for q in steering.read()[1].queues if q not in queues)
    return queues


class KeeperProcess:
    """A forked process that extends this process's claims until this process ends."""

    def __init__(self, app: TaskQ, queues: Sequence[str], steering: Steering | None = None) -> None:
        self.app = app
        self.queues = list(queues)
        self.steering = steering
        self.pid: int | None = None

    def start(self) -> None:
        """Fork the keeper; call it before starting threads (a fork copies only the caller)."""
        broker = self.app.broker
        if not isinstance(broker, ClaimsByOwner):
            return  # RabbitMQ's claims belong to its channel; nothing to extend from outside
        owner, parent = broker.claim_owner, os.getpid()
        pid = fork_sharing()
        if pid:
            self.pid = pid
            return
        code = 0
        try:
            die_with_parent()
            # Shutdown signals are the worker's to act on: the keeper must outlive a warm
            # shutdown's running tasks, and dies with the worker process (or on stop()).
            for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGQUIT):
                signal.signal(sig, signal.SIG_IGN)
            interval = keep_interval(self.app)
            while os.getppid() == parent:
                time.sleep(interval)
                extend_owners(broker, [owner], claimed_queues(self.queues, self.steering))
        except BaseException:
            log.exception("The claim keeper process failed")
            code = 1
        finally:
            os._exit(code)

    def stop(self) -> None:
        if self.pid is None:
            return
        try:
            os.kill(self.pid, signal.SIGKILL)
            os.waitpid(self.pid, 0)
        except (ProcessLookupError, ChildProcessError):
            pass
        self.pid = None
