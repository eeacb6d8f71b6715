"""SQLAlchemyJobStore: jobs in any SQL database SQLAlchemy reaches (sqlite, PostgreSQL,
MariaDB/MySQL), with APScheduler's constructor. It is a full schedule store: the leader
lock and the per-(entry, instant) claim are rows, so several schedulers on one database
enqueue each instant at most once. Changes are noticed by polling a revision counter about
every ``poll_interval`` seconds (a local API change wakes the scheduler at once).

Tables: ``<tablename>`` (id, definition, state as JSON), ``<tablename>_claims``,
``<tablename>_lock``, ``<tablename>_meta``.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime
from typing import Any

from taskq.beat.core.entry import Entry, EntryState
from taskq.beat.core.stores.base import CLAIM_RETENTION, LOCK_NAME, ClaimResult, StoreError
from taskq.brokers.base import Publication
from taskq.display import redact
from taskq.errors import ConfigurationError

try:
    import sqlalchemy as sa
    from sqlalchemy.exc import IntegrityError, SQLAlchemyError
except ImportError:  # pragma: no cover - the `sqlalchemy` extra
    sa = None  # type: ignore[assignment]

REVISION = "revision"


class SQLAlchemyJobStore:
    persistent = True
    enqueues_atomically = False
    notifies = False

    def __init__(
        self,
        url: str | None = None,
        engine: Any = None,
        tablename: str = "taskq_jobs",
        metadata: Any = None,
        pickle_protocol: int | None = None,  # accepted for APScheduler's signature; jobs are JSON here
        tableschema: str | None = None,
        engine_options: dict[str, Any] | None = None,
        poll_interval: float = 1.0,
    ) -> None:
        if sa is None:
            raise ConfigurationError("SQLAlchemyJobStore needs SQLAlchemy: pip install 'taskq[sqlalchemy]'")
        if engine is None and url is None:
            raise ConfigurationError('SQLAlchemyJobStore needs either "engine" or "url"')
        self.engine = engine if engine is not None else sa.create_engine(str(url), **(engine_options or {}))
        self.url = redact(str(self.engine.url.render_as_string(hide_password=False)))
        self.poll_interval = poll_interval
        meta = metadata if metadata is not None else sa.MetaData()
        key = sa.String(191)  # fits a MySQL utf8mb4 index
        self.jobs = sa.Table(
            tablename, meta,
            sa.Column("id", key, primary_key=True),
            sa.Column("definition", sa.Text, nullable=False),
            sa.Column("state", sa.Text, nullable=False),
            schema=tableschema,
        )
        self.claims = sa.Table(
            f"{tablename}_claims", meta,
            sa.Column("entry_id", key, primary_key=True),
            sa.Column("instant", sa.BigInteger, primary_key=True, autoincrement=False),  # microseconds since epoch
            sa.Column("sent", sa.Boolean, nullable=False),
            sa.Column("created", sa.Double, nullable=False),
            schema=tableschema,
        )
        self.lock = sa.Table(
            f"{tablename}_lock", meta,
            sa.Column("name", sa.String(64), primary_key=True),
            sa.Column("owner", key, nullable=False),
            sa.Column("expires", sa.Double, nullable=False),  # Double: a MySQL FLOAT is 32-bit
            schema=tableschema,
        )
        self.meta = sa.Table(
            f"{tablename}_meta", meta,
            sa.Column("name", sa.String(64), primary_key=True),
            sa.Column("value", sa.BigInteger, nullable=False),
            schema=tableschema,
        )
        with self._errors("create tables"):
            for table in (self.jobs, self.claims, self.lock, self.meta):
                table.create(self.engine, checkfirst=True)
            with self.engine.begin() as conn:
                if conn.execute(sa.select(self.meta.c.value).where(self.meta.c.name == REVISION)).first() is None:
                    try:
                        with conn.begin_nested():
                            conn.execute(self.meta.insert().values(name=REVISION, value=0))
                    except IntegrityError:
                        pass  # another process made it first

    @contextmanager
    def _errors(self, what: str) -> Iterator[None]:
        try:
            yield
        except SQLAlchemyError as exc:
            raise StoreError(f"job store {self.url}: {what}: {type(exc).__name__}: {exc}") from None

    def _bump(self, conn: Any) -> None:
        conn.execute(self.meta.update().where(self.meta.c.name == REVISION).values(value=self.meta.c.value + 1))

    # -- entries --------------------------------------------------------------------------------
    def add(self, entry: Entry, replace: bool = False) -> bool:
        row = {"id": entry.id, "definition": _dump(entry.definition_dict()), "state": _dump(entry.state.to_dict())}
        with self._errors("add"), self.engine.begin() as conn:
            exists = conn.execute(sa.select(self.jobs.c.id).where(self.jobs.c.id == entry.id)).first() is not None
            if exists and not replace:
                return False
            if exists:
                conn.execute(self.jobs.delete().where(self.jobs.c.id == entry.id))
            try:
                with conn.begin_nested():
                    conn.execute(self.jobs.insert().values(**row))
            except IntegrityError:
                return False
            self._bump(conn)
        return True

    def set_definition(self, entry: Entry) -> bool:
        return self._update(entry.id, definition=_dump(entry.definition_dict()))

    def set_state(self, entry_id: str, state: EntryState) -> bool:
        return self._update(entry_id, state=_dump(state.to_dict()))

    def _update(self, entry_id: str, **values: str) -> bool:
        with self._errors("update"), self.engine.begin() as conn:
            changed = conn.execute(self.jobs.update().where(self.jobs.c.id == entry_id).values(**values)).rowcount
            if changed:
                self._bump(conn)
        return bool(changed)

    def remove(self, entry_id: str) -> bool:
        with self._errors("remove"), self.engine.begin() as conn:
            removed = conn.execute(self.jobs.delete().where(self.jobs.c.id == entry_id)).rowcount
            if removed:
                self._bump(conn)
        return bool(removed)

    def get(self, entry_id: str) -> Entry | None:
        with self._errors("get"), self.engine.connect() as conn:
            row = conn.execute(sa.select(self.jobs).where(self.jobs.c.id == entry_id)).first()
        return _entry(row) if row is not None else None

    def entries(self) -> list[Entry]:
        with self._errors("entries"), self.engine.connect() as conn:
            rows = conn.execute(sa.select(self.jobs)).fetchall()
        return [_entry(row) for row in rows]

    def revision(self) -> int:
        with self._errors("revision"), self.engine.connect() as conn:
            value = conn.execute(sa.select(self.meta.c.value).where(self.meta.c.name == REVISION)).scalar()
        return int(value or 0)

    def wait_for_change(self, timeout: float, stop: threading.Event, known: int | None = None) -> bool:
        deadline = time.monotonic() + timeout
        while not stop.is_set():
            if known is not None and self.revision() != known:
                return True
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return False
            stop.wait(min(self.poll_interval, remaining))
        return True

    # -- leadership --------------------------------------------------------------------------------
    def acquire_lock(self, owner: str, ttl: float) -> bool:
        now = time.time()
        lock = self.lock.c
        with self._errors("lock"), self.engine.begin() as conn:
            taken = conn.execute(
                self.lock.update()
                .where(lock.name == LOCK_NAME, sa.or_(lock.owner == owner, lock.expires < now))
                .values(owner=owner, expires=now + ttl)
            ).rowcount
            if not taken:
                try:
                    with conn.begin_nested():
                        conn.execute(self.lock.insert().values(name=LOCK_NAME, owner=owner, expires=now + ttl))
                    taken = 1
                except IntegrityError:
                    return False
            conn.execute(self.claims.delete().where(self.claims.c.created < now - CLAIM_RETENTION))
        return True

    def release_lock(self, owner: str) -> None:
        with self._errors("unlock"), self.engine.begin() as conn:
            conn.execute(self.lock.delete().where(self.lock.c.name == LOCK_NAME, self.lock.c.owner == owner))

    def _lock_row(self, conn: Any) -> Any:
        return conn.execute(
            sa.select(self.lock.c.owner, self.lock.c.expires).where(self.lock.c.name == LOCK_NAME)
        ).first()

    def lock_owner(self) -> str | None:
        with self._errors("lock owner"), self.engine.connect() as conn:
            row = self._lock_row(conn)
        return str(row.owner) if row is not None and row.expires > time.time() else None

    def lock_remaining(self) -> float | None:
        with self._errors("lock remaining"), self.engine.connect() as conn:
            row = self._lock_row(conn)
        remaining = row.expires - time.time() if row is not None else 0.0
        return remaining if remaining > 0 else None

    # -- the claim ------------------------------------------------------------------------------------
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
        key = _micros(instant)
        with self._errors("claim"), self.engine.begin() as conn:
            row = conn.execute(
                sa.select(self.lock.c.owner, self.lock.c.expires)
                .where(self.lock.c.name == LOCK_NAME)
                .with_for_update()
            ).first()
            if row is None or row.owner != owner or row.expires <= time.time():
                return ClaimResult.NOT_LEADER
            claimed = self.claims.c
            earlier = sa.select(claimed.sent).where(claimed.entry_id == entry_id, claimed.instant == key)
            if conn.execute(earlier).first():
                return ClaimResult.TAKEN
            current = conn.execute(sa.select(self.jobs.c.state).where(self.jobs.c.id == entry_id)).scalar()
            if current is None:
                return ClaimResult.STALE
            planned_from = json.loads(current).get("next_run_time")
            if planned_from != (expected_next.timestamp() if expected_next is not None else None):
                return ClaimResult.STALE
            try:
                with conn.begin_nested():
                    conn.execute(
                        self.claims.insert().values(
                            entry_id=entry_id, instant=key, sent=not will_publish, created=time.time()
                        )
                    )
            except IntegrityError:
                return ClaimResult.TAKEN
            conn.execute(self.jobs.update().where(self.jobs.c.id == entry_id).values(state=_dump(state.to_dict())))
        return ClaimResult.CLAIMED

    def mark_sent(self, entry_id: str, instant: datetime) -> None:
        claimed = self.claims.c
        with self._errors("mark sent"), self.engine.begin() as conn:
            conn.execute(
                self.claims.update()
                .where(claimed.entry_id == entry_id, claimed.instant == _micros(instant))
                .values(sent=True)
            )

    def unsent_claim(self, entry_id: str, instant: datetime) -> bool:
        claimed = self.claims.c
        with self._errors("unsent claim"), self.engine.connect() as conn:
            sent = conn.execute(
                sa.select(claimed.sent).where(claimed.entry_id == entry_id, claimed.instant == _micros(instant))
            ).scalar()
        return sent is not None and not sent

    def close(self) -> None:
        self.engine.dispose()

    def drop_tables(self) -> None:
        """Remove this store's tables (tests and tear-down)."""
        for table in (self.claims, self.lock, self.meta, self.jobs):
            table.drop(self.engine, checkfirst=True)


def _dump(data: dict[str, Any]) -> str:
    return json.dumps(data, separators=(",", ":"), default=str)


def _entry(row: Any) -> Entry:
    return Entry.from_dicts(json.loads(row.definition), json.loads(row.state))


def _micros(instant: datetime) -> int:
    return round(instant.timestamp() * 1_000_000)
