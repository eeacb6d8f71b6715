"""Celery's database-backend tables (celery/backends/database/models.py), declared with
SQLAlchemy Core so that taskq and Celery read each other's results, plus taskq's counters.

``celery_taskmeta``: id (from the sequence ``task_id_sequence`` where the database has
sequences), task_id unique, status, result (the result serialized as JSON bytes), date_done
(naive UTC), traceback, children (JSON bytes or NULL). ``celery_tasksetmeta`` is created
beside it, as Celery does. ``taskq_counters`` is taskq's own (delivery counts).
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import mysql

TASK_TABLE = "celery_taskmeta"
GROUP_TABLE = "celery_tasksetmeta"
COUNTER_TABLE = "taskq_counters"

# Celery's id type: Integer, BigInteger on MS SQL.
_ID = sa.Integer().with_variant(sa.BigInteger, "mssql")
# Celery's DateTime, with microseconds on MySQL/MariaDB too: their plain DATETIME keeps whole
# seconds, so a result would look up to a second older than it is and expire early (Celery
# reads and writes these columns the same way).
_DONE = sa.DateTime().with_variant(mysql.DATETIME(fsp=6), "mysql", "mariadb")


def build_tables(schema: str | None) -> tuple[sa.MetaData, sa.Table, sa.Table, sa.Table]:
    metadata = sa.MetaData(schema=schema)
    task = sa.Table(
        TASK_TABLE,
        metadata,
        sa.Column("id", _ID, sa.Sequence("task_id_sequence", schema=schema), primary_key=True, autoincrement=True),
        sa.Column("task_id", sa.String(155), unique=True),
        sa.Column("status", sa.String(50)),
        sa.Column("result", sa.LargeBinary, nullable=True),
        sa.Column("date_done", _DONE, nullable=True, index=True),
        sa.Column("traceback", sa.Text, nullable=True),
        sa.Column("children", sa.LargeBinary, nullable=True),
        sqlite_autoincrement=True,
    )
    group = sa.Table(
        GROUP_TABLE,
        metadata,
        sa.Column("id", _ID, sa.Sequence("taskset_id_sequence", schema=schema), primary_key=True, autoincrement=True),
        sa.Column("taskset_id", sa.String(155), unique=True),
        sa.Column("result", sa.LargeBinary, nullable=True),
        sa.Column("date_done", _DONE, nullable=True, index=True),
        sqlite_autoincrement=True,
    )
    counters = sa.Table(
        COUNTER_TABLE,
        metadata,
        sa.Column("key", sa.String(255), primary_key=True),
        sa.Column("value", sa.BigInteger, nullable=False),
        sa.Column("expires", sa.Double, nullable=False),  # unix time: MySQL's FLOAT (4 bytes) is minutes apart
    )
    return metadata, task, group, counters


def _insert(dialect: str) -> Any:
    """The dialect's own INSERT construct (the one with its upsert clause)."""
    from sqlalchemy.dialects import mysql, postgresql, sqlite

    if dialect in ("mysql", "mariadb"):
        return mysql.insert
    if dialect in ("postgresql", "sqlite"):
        return postgresql.insert if dialect == "postgresql" else sqlite.insert
    raise ValueError(f"no upsert for the {dialect} dialect")


def upsert(dialect: str, table: sa.Table, rows: list[dict[str, Any]], key: str, update: list[str]) -> Any:
    """INSERT ... ON CONFLICT / ON DUPLICATE KEY UPDATE, in the dialect's own words."""
    stmt = _insert(dialect)(table).values(rows)
    if dialect in ("mysql", "mariadb"):
        return stmt.on_duplicate_key_update({c: stmt.inserted[c] for c in update})
    return stmt.on_conflict_do_update(index_elements=[key], set_={c: stmt.excluded[c] for c in update})


def counter_upsert(dialect: str, counters: sa.Table, key: str, now: float, expires: float) -> Any:
    """Add one to a counter (restarting from 1 once it expired), in one statement; it
    returns the new value except on MySQL, where the caller reads it in the same transaction."""
    fresh = sa.case((counters.c.expires < now, 1), else_=counters.c.value + 1)
    stmt = _insert(dialect)(counters).values({"key": key, "value": 1, "expires": expires})
    if dialect in ("mysql", "mariadb"):
        # MySQL assigns left to right: value first, while expires still holds the old time.
        return stmt.on_duplicate_key_update([("value", fresh), ("expires", expires)])
    return stmt.on_conflict_do_update(index_elements=["key"], set_={"value": fresh, "expires": expires}).returning(
        counters.c.value
    )
