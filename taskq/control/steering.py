"""What remote control changes in a running pool: its size, its queues, its rate limits.

The control process (monitor.py) answers ``pool_grow``, ``pool_shrink``, ``add_consumer``,
``cancel_consumer`` and ``rate_limit``; the pool's processes act on them. Between them is
one anonymous shared mapping made before any fork, holding the wanted state as one JSON
document under a sequence number (odd while the control process writes; a reader retries
while it moves, as slots.py does). Readers compare the sequence number with the one they
last applied, an integer read from memory: a worker nobody steers pays nothing more.

* prefork: the supervisor starts or stops children to match the size; each child's
  consumer applies queues and rates (so a rate reaches every child).
* threads and asyncio: the pool starts or stops consumer threads; each consumer applies
  queues, the pool's one rate limiter the rates.
* solo cannot change size (one consumer in the main thread); handlers.py says so.
"""

from __future__ import annotations

import json
import mmap
import struct
from dataclasses import dataclass, field
from typing import Any

HEAD = struct.Struct("<QI")  # sequence number, document length
DOCUMENT_MAX = 64 * 1024 - HEAD.size  # the smallest room for the document ...
ROOM = 4  # ... or this many times the starting document (-Q over 10,000 queues needs ~100 KB)
GROWTH = 4  # a pool grows to at most this many times its starting size ...
CEILING_MIN = 16  # ... or this many, whichever is more (shared records are sized at start) ...
CEILING_MAX = 1024  # ... and never past -c's own limit


def ceiling_for(concurrency: int) -> int:
    """The largest size ``pool_grow`` may reach for a pool started with ``concurrency``."""
    return min(CEILING_MAX, max(CEILING_MIN, concurrency * GROWTH, concurrency))


@dataclass
class Wanted:
    size: int
    queues: list[str]
    rates: dict[str, str] = field(default_factory=dict)  # task name -> rate ("0": no limit)


class Steering:
    def __init__(self, concurrency: int, queues: list[str]) -> None:
        self.ceiling = ceiling_for(concurrency)
        # Sized at start (the pool forks with the mapping). An anonymous mapping takes memory
        # only for the pages written, so the room beyond the document costs nothing.
        self.room = max(DOCUMENT_MAX, ROOM * len(_document(Wanted(concurrency, list(queues)))))
        self._mem = mmap.mmap(-1, HEAD.size + self.room)
        self._wanted = Wanted(concurrency, list(queues))  # the writer's copy (control process)
        self._write(self._wanted)

    # -- the control process's side ----------------------------------------------------------
    @property
    def wanted(self) -> Wanted:
        return self._wanted

    def change(self, size: int | None = None, queues: list[str] | None = None,
               rates: dict[str, str] | None = None) -> None:
        """Publish a new wanted state; ValueError when it does not fit the shared mapping."""
        wanted = Wanted(
            self._wanted.size if size is None else size,
            list(self._wanted.queues if queues is None else queues),
            dict(self._wanted.rates if rates is None else rates),
        )
        self._write(wanted)
        self._wanted = wanted

    def _write(self, wanted: Wanted) -> None:
        data = _document(wanted)
        if len(data) > self.room:
            raise ValueError(f"too many queues or rate limits to hold ({len(data)} bytes of {self.room})")
        seq = HEAD.unpack_from(self._mem, 0)[0]
        HEAD.pack_into(self._mem, 0, seq + 1, 0)  # odd: being written
        self._mem[HEAD.size : HEAD.size + len(data)] = data
        HEAD.pack_into(self._mem, 0, seq + 2, len(data))

    # -- the pool's side -----------------------------------------------------------------------
    @property
    def sequence(self) -> int:
        """Changes when the wanted state does: compare it with the one last applied."""
        return int(HEAD.unpack_from(self._mem, 0)[0])

    def read(self) -> tuple[int, Wanted]:
        """The sequence number and the wanted state it stands for (never half-written)."""
        while True:
            seq, size = HEAD.unpack_from(self._mem, 0)
            data = bytes(self._mem[HEAD.size : HEAD.size + size])
            if seq % 2 == 0 and HEAD.unpack_from(self._mem, 0)[0] == seq:
                break
        doc: dict[str, Any] = json.loads(data)
        return seq, Wanted(int(doc["size"]), [str(q) for q in doc["queues"]], dict(doc["rates"]))


def _document(wanted: Wanted) -> bytes:
    return json.dumps({"size": wanted.size, "queues": wanted.queues, "rates": wanted.rates}).encode()
