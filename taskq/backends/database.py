"""Result backend in a SQL database, in Celery's database-backend tables (db_tables.py):
``db+postgresql://``, ``db+mysql://`` (MariaDB too) and ``db+sqlite:///``, through SQLAlchemy.

Celery's DatabaseBackend on the same URL reads taskq's results and the reverse. Waiting:
on PostgreSQL a trigger on ``celery_taskmeta`` NOTIFYs the task id when a row turns ready
(whoever writes it, Celery included), and ``get()`` LISTENs for the duration of the wait; on
MySQL and SQLite it polls with a backoff from 20 ms to 1 s. ``?schema=`` names the schema
(PostgreSQL) or database (MySQL) of the tables, as Celery's ``database_table_schemas``.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta, timezone
from typing import TYPE_CHECKING, Any

from taskq import states
from taskq.backends.base import ResultBackend, load_json
from taskq.backends.db_chords import ChordParts
from taskq.display import redact
from taskq.errors import BackendError, ConfigurationError

if TYPE_CHECKING:
    from taskq.config import Settings

log = logging.getLogger(__name__)

DEFAULT_DRIVERS = {"postgresql": "postgresql+psycopg", "postgres": "postgresql+psycopg", "mysql": "mysql+pymysql"}
POLL_FIRST, POLL_MAX = 0.02, 1.0


def engine_url(url: str) -> tuple[str, str | None]:
    """``db+mysql://u@h/db?schema=s`` -> (``mysql+pymysql://u@h/db``, ``s``)."""
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    if not url.startswith("db+"):
        raise ConfigurationError(f"database result backend URL {redact(url)!r} must start with db+")
    try:
        parsed = make_url(url[3:])
    except ArgumentError as exc:
        raise ConfigurationError(f"result backend URL {redact(url)!r}: {exc}") from None
    schema = parsed.query.get("schema")
    parsed = parsed.difference_update_query(["schema"])
    parsed = parsed.set(drivername=DEFAULT_DRIVERS.get(parsed.drivername, parsed.drivername))
    return parsed.render_as_string(hide_password=False), schema if isinstance(schema, str) else None


def _utcnow() -> datetime:
    return datetime.now(timezone.utc).replace(tzinfo=None)  # Celery's column is naive UTC


class DatabaseBackend(ChordParts, ResultBackend):
    def __init__(self, url: str, settings: Settings) -> None:
        super().__init__(url, settings)
        try:
            import sqlalchemy as sa
        except ImportError:
            raise ConfigurationError("db+ result backends need SQLAlchemy: pip install 'taskq[sqlalchemy]'") from None
        from taskq.backends.db_tables import build_tables

        self.sa = sa
        self.engine_url, self.schema = engine_url(url)
        self.dialect = sa.engine.make_url(self.engine_url).get_backend_name()
        self.metadata, self.task, self.group, self.counters = build_tables(self.schema)
        self._engine: Any = None
        self._pid = -1
        self._lock = threading.Lock()
        self._waits = threading.local()
        self._listener: Any = None
        if self.dialect == "postgresql":
            from taskq.backends.db_notify import ResultListener

            self._listener = ResultListener(self.engine_url, self.schema)

    # -- engine, tables and errors ----------------------------------------------------------
    @property
    def engine(self) -> Any:
        with self._lock:
            if self._pid != os.getpid():
                if self._engine is not None:
                    self._engine.dispose(close=False)  # the parent's sockets stay the parent's
                engine = self.sa.create_engine(self.engine_url, pool_pre_ping=True)
                with self._translated():
                    self._create_tables(engine)
                self._engine, self._pid = engine, os.getpid()
            return self._engine

    def _create_tables(self, engine: Any) -> None:
        if self._listener is not None:
            self._listener.create_tables(engine, self.metadata)
            return
        try:
            self.metadata.create_all(engine)
        except self.sa.exc.SQLAlchemyError:
            self.metadata.create_all(engine)  # another process created them between check and create

    @contextmanager
    def _translated(self) -> Iterator[None]:
        try:
            yield
        except self.sa.exc.SQLAlchemyError as exc:
            detail = " ".join(str(getattr(exc, "orig", None) or exc).split())
            raise BackendError(f"result backend {self.dialect}: {detail}") from None

    @contextmanager
    def _begin(self) -> Iterator[Any]:
        engine = self.engine
        with self._translated(), engine.begin() as conn:
            yield conn

    # -- primitives ---------------------------------------------------------------------------
    def _task_id(self, key: str) -> str:
        return key[len(self.prefix) :] if key.startswith(self.prefix) else key

    def _get(self, key: str) -> bytes | None:
        t = self.task.c
        cutoff = _utcnow() - timedelta(seconds=self.expires)
        query = self.sa.select(t.status, t.result, t.date_done, t.traceback, t.children).where(
            t.task_id == self._task_id(key), self.sa.or_(t.date_done.is_(None), t.date_done >= cutoff)
        )
        with self._begin() as conn:
            row = conn.execute(query).first()
        if row is None:
            return None
        done = row.date_done.replace(tzinfo=timezone.utc).isoformat() if row.date_done else None
        task_id = self._task_id(key)
        # A Celery app with result_serializer = "pickle" (or msgpack) writes other bytes here:
        # InvalidResult naming the task, as every backend reports such a result.
        meta = {
            "status": row.status,
            "result": None if row.result is None else load_json(task_id, row.result),
            "traceback": row.traceback,
            "children": load_json(task_id, row.children) if row.children else [],
            "date_done": done if row.status in states.READY_STATES else None,
            "task_id": task_id,
        }
        return self.encode_meta(meta)

    def _row(self, key: str, value: bytes) -> dict[str, Any]:
        meta = json.loads(value)
        return {
            "task_id": self._task_id(key),
            "status": meta["status"],
            "result": json.dumps(meta.get("result"), separators=(",", ":")).encode(),
            "date_done": _utcnow(),
            "traceback": meta.get("traceback"),
            "children": json.dumps(meta["children"]).encode() if meta.get("children") else None,
        }

    def _set(self, key: str, value: bytes, ttl: float) -> None:
        self._set_many([(key, value)], ttl)

    def _set_many(self, items: list[tuple[str, bytes]], ttl: float) -> None:
        rows = list({self._task_id(k): self._row(k, v) for k, v in items}.values())  # one row per id
        with self._translated():
            try:
                self._upsert(rows)
            except self.sa.exc.DataError:
                # A value the table cannot hold (an id with NUL on PostgreSQL, one longer than
                # Celery's 155 characters) fails the whole batch: the others are written one by
                # one, and that one is reported and left out, as no retry could ever store it.
                for row in rows:
                    try:
                        self._upsert([row])
                    except self.sa.exc.DataError as exc:
                        detail = " ".join(str(getattr(exc, "orig", None) or exc).split())
                        log.error("Result of task %.200r not stored: %s cannot hold it (%s)", row["task_id"],
                                  self.dialect, detail)

    def _upsert(self, rows: list[dict[str, Any]]) -> None:
        from taskq.backends.db_tables import upsert

        columns = ["status", "result", "date_done", "traceback", "children"]
        with self.engine.begin() as conn:
            conn.execute(upsert(self.dialect, self.task, rows, "task_id", columns))

    def _delete(self, key: str) -> None:
        with self._begin() as conn:
            conn.execute(self.sa.delete(self.task).where(self.task.c.task_id == self._task_id(key)))

    def reset_counter(self, key: str) -> None:
        # Counters have their own table here: _delete would remove a task's result instead.
        with self._begin() as conn:
            conn.execute(self.sa.delete(self.counters).where(self.counters.c.key == key))

    def _incr(self, key: str, ttl: float) -> int:
        from taskq.backends.db_tables import counter_upsert

        with self._begin() as conn:
            now = time.time()  # once connected: opening (and creating the tables) may take a while
            done = conn.execute(counter_upsert(self.dialect, self.counters, key, now, now + ttl))
            if self.dialect in ("mysql", "mariadb"):  # the row stays locked until this transaction ends
                select = self.sa.select(self.counters.c.value).where(self.counters.c.key == key)
                return int(conn.execute(select).scalar_one())
            return int(done.scalar_one())

    # -- waiting ------------------------------------------------------------------------------
    def wait_for(self, task_id: str, timeout: float | None = None) -> dict[str, Any]:
        self._waits.pause = POLL_FIRST
        if self._listener is None:
            return super().wait_for(task_id, timeout)
        with self._listener.listening() as notes:  # LISTEN before the first read: nothing slips by
            self._waits.notes = notes
            try:
                return super().wait_for(task_id, timeout)
            finally:
                self._waits.notes = None

    def _wait(self, key: str, timeout: float) -> None:
        notes = getattr(self._waits, "notes", None)
        if notes is not None:
            notes.wait_for(self._task_id(key), min(timeout, 5.0))  # 5 s: a safety look, never needed
            return
        pause = getattr(self._waits, "pause", POLL_FIRST)
        time.sleep(min(pause, max(timeout, 0.0)))
        self._waits.pause = min(pause * 2, POLL_MAX)

    def cleanup(self) -> int:
        cutoff = _utcnow() - timedelta(seconds=self.expires)
        with self._begin() as conn:
            removed = conn.execute(self.sa.delete(self.task).where(self.task.c.date_done < cutoff)).rowcount
            conn.execute(self.sa.delete(self.group).where(self.group.c.date_done < cutoff))
            conn.execute(self.sa.delete(self.counters).where(self.counters.c.expires < time.time()))
        return int(removed)

    def close(self) -> None:
        with self._lock:
            if self._engine is not None and self._pid == os.getpid():
                self._engine.dispose()
            self._engine, self._pid = None, -1
        if self._listener is not None:
            self._listener.close()
