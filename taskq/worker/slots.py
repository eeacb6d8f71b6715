"""The small shared slots through which prefork children tell their supervisor about themselves.

One fixed-size record per pool slot in an anonymous shared mapping that the supervisor makes
before it forks (DESIGN.md section 6): a child writes, the supervisor reads, no message and
no lock between them. A record holds the owner name of the child's broker claims, which
the supervisor keeps alive for it (a task holding the GIL starves the child's own keeper
thread), and the task the child runs now with its hard deadline, which the supervisor
enforces (time limits) and matches against revocations (terminate=True).

A record is a length byte followed by the name. The writer stores the name first and the
length last, and a reader takes the length first, so it never sees half a name.
"""

from __future__ import annotations

import mmap
import struct
from dataclasses import dataclass

from taskq.worker.handback import HandbackLocks

RECORD = 256  # bytes per slot: one length byte and a name of up to 255 bytes
# The running task: a sequence number (odd while the child writes), the hard deadline
# (time.monotonic(), the same clock in every process; 0 = none), the limit in seconds, then
# the task id (length byte and bytes). The reader retries while the sequence moves.
TASK = struct.Struct("=Iddb")
TASK_RECORD = 128
MAX_TASK_ID = TASK_RECORD - TASK.size


@dataclass(frozen=True)
class Running:
    task_id: str
    deadline: float  # monotonic; 0.0: no hard limit
    limit: float


class ChildSlots:
    def __init__(self, count: int) -> None:
        self.count = count
        # Anonymous and MAP_SHARED: every child forked afterwards writes into this same memory.
        self._mem = mmap.mmap(-1, max(count, 1) * (RECORD + TASK_RECORD))
        self._tasks = max(count, 1) * RECORD  # where the running-task records start
        self.handback = HandbackLocks()  # a child hands messages back holding its slot's (handback.py)

    def publish_owner(self, slot: int, owner: str) -> bool:
        """Called in the child: record its claim owner. False if the name does not fit."""
        data = owner.encode()
        if len(data) >= RECORD:
            return False
        start = slot * RECORD
        self._mem[start + 1 : start + 1 + len(data)] = data
        self._mem[start] = len(data)
        return True

    def owner(self, slot: int) -> str:
        """Called in the supervisor: the owner the child in ``slot`` published, or ""."""
        start = slot * RECORD
        size = self._mem[start]
        return self._mem[start + 1 : start + 1 + size].decode(errors="replace")

    def clear(self, slot: int) -> None:
        """Called in the supervisor once the child in ``slot`` is gone, and before it starts one."""
        self._mem[slot * RECORD] = 0
        self.publish_task(slot, "", 0.0, 0.0)
        self.handback.give(slot)  # taken for a kill (watchdog.py)

    def publish_task(self, slot: int, task_id: str, deadline: float, limit: float) -> None:
        """Called in the child as a task starts (``task_id`` "" once it ended)."""
        start = self._tasks + slot * TASK_RECORD
        data = task_id.encode()
        size = len(data)
        if size > MAX_TASK_ID:  # not enforceable from outside: the child's alarm still is
            data, size, deadline = b"", 0, 0.0
        seq = TASK.unpack_from(self._mem, start)[0]
        TASK.pack_into(self._mem, start, (seq + 1) & 0xFFFFFFFF, 0.0, 0.0, 0)  # odd: being written
        if size:  # "" (the task ended): the length below is all a reader needs
            self._mem[start + TASK.size : start + TASK.size + size] = data
        TASK.pack_into(self._mem, start, (seq + 2) & 0xFFFFFFFF, deadline, limit, size)

    def running(self, slot: int) -> Running | None:
        """Called in the supervisor: the task the child in ``slot`` runs now, if any."""
        start = self._tasks + slot * TASK_RECORD
        while True:
            seq, deadline, limit, size = TASK.unpack_from(self._mem, start)
            data = bytes(self._mem[start + TASK.size : start + TASK.size + max(size, 0)])
            if seq % 2 == 0 and TASK.unpack_from(self._mem, start)[0] == seq:
                break
        return Running(data.decode(errors="replace"), deadline, limit) if data else None
