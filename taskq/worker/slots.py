"""The small shared slots through which prefork children tell their supervisor about themselves.

One fixed-size record per pool slot in an anonymous shared mapping that the supervisor makes
before it forks (DESIGN.md section 6): a child writes, the supervisor reads, no message and
no lock between them. Today a record holds the owner name of the child's broker claims,
which the supervisor keeps alive for it (a task holding the GIL starves the child's own
keeper thread).

A record is a length byte followed by the name. The writer stores the name first and the
length last, and a reader takes the length first, so it never sees half a name.
"""

from __future__ import annotations

import mmap

RECORD = 256  # bytes per slot: one length byte and a name of up to 255 bytes


class ChildSlots:
    def __init__(self, count: int) -> None:
        self.count = count
        # Anonymous and MAP_SHARED: every child forked afterwards writes into this same memory.
        self._mem = mmap.mmap(-1, max(count, 1) * RECORD)

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
        """Called in the supervisor before it starts a child in ``slot``."""
        self._mem[slot * RECORD] = 0
