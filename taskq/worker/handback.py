"""A prefork child is never killed halfway through handing messages back.

A child hands unstarted messages back (held behind a long task, or on a warm stop) in two
steps on RabbitMQ: a confirmed copy, then an ack of the original. The supervisor SIGKILLs a
child whose task passes its hard time limit (or is revoked with terminate=True). Killed
between the two steps, the child leaves the copy in the queue and its original comes back
with its connection: the task runs twice. The hand-back held behind a task starts at
``worker_hold_limit`` (1 s) after the task, the kill at its hard limit: a task with a 1 s
limit meets both at once.

So a child hands back while holding its slot's lock, and the supervisor kills only with
that lock in hand: a kill comes before a hand-back or after it, never during one.

The locks are POSIX record locks (``fcntl.lockf``) on one byte per slot of a file the
supervisor opens before it forks: they belong to a process (a child's lock is not the
supervisor's), the kernel drops them when their process dies (a child that dies holding
one does not wedge its slot), and a fork does not inherit them.
"""

from __future__ import annotations

import fcntl
import tempfile
import threading
from collections.abc import Iterator
from contextlib import contextmanager


class HandbackLocks:
    def __init__(self) -> None:
        self._file = tempfile.TemporaryFile()  # made before the fork: every child shares it
        # A process holds a byte once however many of its threads lock it, and the first
        # unlock frees it: a child's threads take turns, so the lock spans each hand-back.
        self._threads = threading.Lock()

    @contextmanager
    def held(self, slot: int) -> Iterator[None]:
        """In a child: hand back while this is held. Waits while the supervisor holds the
        slot (it is about to kill this child, which then dies here, before handing back)."""
        with self._threads:
            fcntl.lockf(self._file, fcntl.LOCK_EX, 1, slot)
            try:
                yield
            finally:
                fcntl.lockf(self._file, fcntl.LOCK_UN, 1, slot)

    def take(self, slot: int) -> bool:
        """In the supervisor, before a kill: False while the child hands back (try again)."""
        try:
            fcntl.lockf(self._file, fcntl.LOCK_EX | fcntl.LOCK_NB, 1, slot)
        except OSError:  # EAGAIN or EACCES: the child holds it
            return False
        return True

    def give(self, slot: int) -> None:
        """In the supervisor, once the slot's child is gone (a lock not held: no-op)."""
        fcntl.lockf(self._file, fcntl.LOCK_UN, 1, slot)
