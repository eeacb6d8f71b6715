"""The default schedule store: tables in a SQLite file, often the broker's own file.

When the store and the sqlite broker share the file, ``claim`` inserts the messages with
``taskq.brokers.sqlite.insert_messages`` inside its own BEGIN IMMEDIATE transaction: the
claim, the state and the enqueue commit together or not at all.

Changes: the API bumps a revision row. A sleeping beat reads ``PRAGMA data_version`` (it
changes when another connection commits to the file) about once a second, and reads the
revision only then: a cheap check for changes, while due instants still wake it exactly.
"""

from __future__ import annotations

import json
import os
import sqlite3
import threading
import time
from collections.abc import Sequence
from datetime import datetime

from taskq.beat.core.entry import Entry, EntryState
from taskq.beat.core.stores.base import CLAIM_RETENTION, LOCK_NAME, ClaimResult, StoreError
from taskq.brokers.base import Publication
from taskq.brokers.sqlite import SCHEMA as BROKER_SCHEMA
from taskq.brokers.sqlite import insert_messages
from taskq.errors import ConfigurationError
from taskq.sqlite_db import SQLiteConnections, sqlite_path

CHANGE_CHECK_INTERVAL = 1.0

SCHEMA = """
CREATE TABLE IF NOT EXISTS taskq_beat_entries (
    id TEXT PRIMARY KEY,
    definition TEXT NOT NULL,
    state TEXT NOT NULL,
    next_run REAL
);
CREATE TABLE IF NOT EXISTS taskq_beat_claims (
    entry_id TEXT NOT NULL,
    instant REAL NOT NULL,
    owner TEXT NOT NULL,
    claimed_at REAL NOT NULL,
    sent INTEGER NOT NULL DEFAULT 1,
    PRIMARY KEY (entry_id, instant)
);
CREATE TABLE IF NOT EXISTS taskq_beat_lock (name TEXT PRIMARY KEY, owner TEXT NOT NULL, expires REAL NOT NULL);
CREATE TABLE IF NOT EXISTS taskq_beat_meta (key TEXT PRIMARY KEY, value REAL NOT NULL);
"""


class _Stale(Exception):
    """Raised inside the claim transaction to roll it back."""


class SQLiteScheduleStore:
    notifies = False

    def __init__(self, url: str, broker_url: str | None = None) -> None:
        self.url = url
        path = sqlite_path(url)
        self.enqueues_atomically = bool(broker_url and _same_file(broker_url, path))
        # With the broker in the same file, make sure its tables exist for the atomic enqueue.
        schema = SCHEMA + (BROKER_SCHEMA if self.enqueues_atomically else "")
        # A commit that crosses the WAL's auto-checkpoint size copies the WAL into the file and
        # syncs it: milliseconds inside a timed claim-and-enqueue. Beat checkpoints when it
        # goes to sleep (wait_for_change), so its commits stay far below this store's raised
        # threshold (10,000 pages), which only bounds the WAL when no beat runs.
        schema += "PRAGMA wal_autocheckpoint = 10000;"
        self._db = SQLiteConnections(url, schema, StoreError, "sqlite schedule store")
        self._seen = threading.local()

    @staticmethod
    def _bump(conn: sqlite3.Connection) -> None:
        conn.execute(
            "INSERT INTO taskq_beat_meta (key, value) VALUES ('revision', 1)"
            " ON CONFLICT (key) DO UPDATE SET value = value + 1"
        )

    # -- entries ---------------------------------------------------------------------------
    def add(self, entry: Entry, replace: bool = False) -> bool:
        verb = "INSERT OR REPLACE" if replace else "INSERT OR IGNORE"
        with self._db.transaction() as conn:
            cursor = conn.execute(
                f"{verb} INTO taskq_beat_entries (id, definition, state, next_run) VALUES (?, ?, ?, ?)",
                (entry.id, _dump(entry.definition_dict()), _dump(entry.state.to_dict()), _ts(entry.next_run_time)),
            )
            if cursor.rowcount:
                self._bump(conn)
            return cursor.rowcount > 0

    def set_definition(self, entry: Entry) -> bool:
        with self._db.transaction() as conn:
            cursor = conn.execute(
                "UPDATE taskq_beat_entries SET definition = ? WHERE id = ?", (_dump(entry.definition_dict()), entry.id)
            )
            if cursor.rowcount:
                self._bump(conn)
            return cursor.rowcount > 0

    def set_state(self, entry_id: str, state: EntryState) -> bool:
        with self._db.transaction() as conn:
            cursor = conn.execute(
                "UPDATE taskq_beat_entries SET state = ?, next_run = ? WHERE id = ?",
                (_dump(state.to_dict()), _ts(state.next_run_time), entry_id),
            )
            if cursor.rowcount:
                self._bump(conn)
            return cursor.rowcount > 0

    def remove(self, entry_id: str) -> bool:
        with self._db.transaction() as conn:
            cursor = conn.execute("DELETE FROM taskq_beat_entries WHERE id = ?", (entry_id,))
            if cursor.rowcount:
                self._bump(conn)
            return cursor.rowcount > 0

    def get(self, entry_id: str) -> Entry | None:
        with self._db.connection() as conn:
            row = conn.execute("SELECT definition, state FROM taskq_beat_entries WHERE id = ?", (entry_id,)).fetchone()
        return Entry.from_dicts(json.loads(row[0]), json.loads(row[1])) if row else None

    def entries(self) -> list[Entry]:
        with self._db.connection() as conn:
            rows = conn.execute("SELECT definition, state FROM taskq_beat_entries ORDER BY id").fetchall()
        return [Entry.from_dicts(json.loads(d), json.loads(s)) for d, s in rows]

    def revision(self) -> int:
        with self._db.connection() as conn:
            row = conn.execute("SELECT value FROM taskq_beat_meta WHERE key = 'revision'").fetchone()
        return int(row[0]) if row else 0

    def _data_version(self) -> int:
        with self._db.connection() as conn:
            return int(conn.execute("PRAGMA data_version").fetchone()[0])

    def wait_for_change(self, timeout: float, stop: threading.Event, known: int | None = None) -> bool:
        deadline = time.monotonic() + max(timeout, 0.0)
        with self._db.connection() as conn:  # off the timing path: beat has nothing due now
            conn.execute("PRAGMA wal_checkpoint(PASSIVE)")
        version, revision = self._data_version(), self.revision()
        if known is not None and revision != known:
            return True  # changed while the caller was busy
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return False
            if stop.wait(min(remaining, CHANGE_CHECK_INTERVAL)):
                return True
            now_version = self._data_version()
            if now_version != version:  # someone committed to the file: was it a schedule change?
                version = now_version
                if self.revision() != revision:
                    return True

    # -- leadership ------------------------------------------------------------------------
    def acquire_lock(self, owner: str, ttl: float) -> bool:
        now = time.time()
        with self._db.transaction() as conn:
            row = conn.execute("SELECT owner, expires FROM taskq_beat_lock WHERE name = ?", (LOCK_NAME,)).fetchone()
            if row is not None and row[0] != owner and row[1] > now:
                return False
            conn.execute(
                "INSERT OR REPLACE INTO taskq_beat_lock (name, owner, expires) VALUES (?, ?, ?)",
                (LOCK_NAME, owner, now + ttl),
            )
            return True

    def release_lock(self, owner: str) -> None:
        with self._db.transaction() as conn:
            conn.execute("DELETE FROM taskq_beat_lock WHERE name = ? AND owner = ?", (LOCK_NAME, owner))

    def lock_owner(self) -> str | None:
        with self._db.connection() as conn:
            row = conn.execute(
                "SELECT owner FROM taskq_beat_lock WHERE name = ? AND expires > ?", (LOCK_NAME, time.time())
            ).fetchone()
        return str(row[0]) if row else None

    def lock_remaining(self) -> float | None:
        with self._db.connection() as conn:
            row = conn.execute("SELECT expires FROM taskq_beat_lock WHERE name = ?", (LOCK_NAME,)).fetchone()
        remaining = float(row[0]) - time.time() if row else 0.0
        return remaining if remaining > 0 else None

    # -- the claim -------------------------------------------------------------------------
    def claim(
        self,
        owner: str,
        entry_id: str,
        instant: datetime,
        expected_next: datetime | None,
        state: EntryState,
        publications: Sequence[Publication],
        will_publish: bool = False,
    ) -> ClaimResult:
        try:
            return self._claim(owner, entry_id, instant, expected_next, state, publications, will_publish)
        except _Stale:
            return ClaimResult.STALE

    def _claim(
        self,
        owner: str,
        entry_id: str,
        instant: datetime,
        expected_next: datetime | None,
        state: EntryState,
        publications: Sequence[Publication],
        will_publish: bool,
    ) -> ClaimResult:
        now = time.time()
        with self._db.transaction() as conn:
            row = conn.execute("SELECT owner, expires FROM taskq_beat_lock WHERE name = ?", (LOCK_NAME,)).fetchone()
            if row is None or row[0] != owner or row[1] <= now:
                return ClaimResult.NOT_LEADER
            taken = conn.execute(
                "INSERT OR IGNORE INTO taskq_beat_claims (entry_id, instant, owner, claimed_at, sent)"
                " VALUES (?, ?, ?, ?, ?)",
                (entry_id, instant.timestamp(), owner, now, 0 if will_publish else 1),
            )
            if taken.rowcount == 0:
                return ClaimResult.TAKEN
            advanced = conn.execute(
                "UPDATE taskq_beat_entries SET state = ?, next_run = ? WHERE id = ? AND next_run IS ?",
                (_dump(state.to_dict()), _ts(state.next_run_time), entry_id, _ts(expected_next)),
            )
            if advanced.rowcount == 0:
                raise _Stale  # rolls the claim back: the entry changed under us
            if publications:
                if not self.enqueues_atomically:
                    raise ConfigurationError("this schedule store cannot enqueue: the broker is elsewhere")
                insert_messages(conn, publications)
            conn.execute(
                "DELETE FROM taskq_beat_claims WHERE entry_id = ? AND claimed_at < ?", (entry_id, now - CLAIM_RETENTION)
            )
            return ClaimResult.CLAIMED

    def mark_sent(self, entry_id: str, instant: datetime) -> None:
        with self._db.connection() as conn:
            conn.execute(
                "UPDATE taskq_beat_claims SET sent = 1 WHERE entry_id = ? AND instant = ?",
                (entry_id, instant.timestamp()),
            )

    def unsent_claim(self, entry_id: str, instant: datetime) -> bool:
        with self._db.connection() as conn:
            row = conn.execute(
                "SELECT sent FROM taskq_beat_claims WHERE entry_id = ? AND instant = ?", (entry_id, instant.timestamp())
            ).fetchone()
        return row is not None and row[0] == 0

    def close(self) -> None:
        self._db.close()


def _same_file(broker_url: str, store_path: str) -> bool:
    if not broker_url.startswith("sqlite:"):
        return False
    try:
        return os.path.abspath(sqlite_path(broker_url)) == os.path.abspath(store_path)
    except ConfigurationError:
        return False


def _dump(value: object) -> str:
    return json.dumps(value, separators=(",", ":"), sort_keys=True)


def _ts(moment: datetime | None) -> float | None:
    return moment.timestamp() if moment is not None else None
