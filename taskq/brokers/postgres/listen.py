"""Reading new rows the moment a NOTIFY announces them: the side channels' wait (events,
control requests and replies), the same scheme as the broker's fetch.

A reader LISTENs on its thread's connection, then queries at once (so nothing committed
before the LISTEN is missed), and afterwards only when a notification arrives on its
channel, or once per ``safety`` seconds in case one was lost with a connection. While idle it
sends no query in between: it sleeps on the socket.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any, TypeVar

from taskq.brokers.postgres.connection import PgConnections

T = TypeVar("T")


class NotifiedReader:
    def __init__(
        self, db: PgConnections, channel: str, safety: float, on_listen: Callable[[Any], None] | None = None
    ) -> None:
        self.db = db
        self.channel = channel
        self.safety = safety
        self.on_listen = on_listen  # runs on each connection right after its LISTEN
        self._local = threading.local()  # per thread: the connection listening, when to look again

    def read(self, query: Callable[[Any], list[T]], timeout: float) -> list[T]:
        """``query(conn)``'s rows as soon as it has some, or [] after ``timeout`` seconds."""
        deadline = time.monotonic() + timeout
        with self.db.connection() as conn:
            if getattr(self._local, "conn", None) is not conn:
                conn.execute(f'LISTEN "{self.channel}"')
                if self.on_listen is not None:
                    self.on_listen(conn)
                self._local.conn, self._local.look_at = conn, 0.0
            while True:
                if time.monotonic() >= self._local.look_at:
                    rows = query(conn)
                    # after rows, look again on the next call: a batch may have left more behind
                    self._local.look_at = 0.0 if rows else time.monotonic() + self.safety
                    if rows:
                        return rows
                pause = min(deadline, self._local.look_at) - time.monotonic()
                if deadline - time.monotonic() <= 0:
                    return []
                if self._notified(conn, max(pause, 0.0)):
                    self._local.look_at = 0.0

    def _notified(self, conn: Any, pause: float) -> bool:
        """Whether a notification on our channel arrived within ``pause``; every pending one
        is taken, so a burst of inserts costs one query."""
        seen = False
        for note in conn.notifies(timeout=pause, stop_after=1):
            seen = seen or note.channel == self.channel
        if seen:
            list(conn.notifies(timeout=0.0))
        return seen


class IdCursor:
    """Where a reader of a bigserial table is. Ids are handed out at insert but become
    visible at commit, so a row with a smaller id can appear after a larger one was read
    (two publishers committing in the other order). The ids skipped over are kept as gaps
    and asked for again for ``hold`` seconds; a gap that never fills was a rolled-back insert.
    """

    MAX_GAPS = 1000

    def __init__(self, last: int, hold: float = 5.0) -> None:
        self.last = last
        self.hold = hold
        self._gaps: dict[int, float] = {}  # id -> when it stops being asked for

    @property
    def gaps(self) -> list[int]:
        now = time.monotonic()
        self._gaps = {i: until for i, until in self._gaps.items() if until > now}
        return list(self._gaps)

    def advance(self, ids: list[int]) -> None:
        """Record the ids just read (in id order)."""
        for row_id in ids:
            self._gaps.pop(row_id, None)
        newer = [i for i in ids if i > self.last]
        if not newer:
            return
        until, seen = time.monotonic() + self.hold, set(newer)
        missing = [i for i in range(self.last + 1, newer[-1]) if i not in seen]
        for gap in missing[-self.MAX_GAPS:]:
            self._gaps[gap] = until
        self.last = newer[-1]
