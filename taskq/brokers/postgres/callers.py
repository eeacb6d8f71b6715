"""The caller's connection, for enqueueing inside the caller's transaction: a psycopg 3
Connection, a SQLAlchemy Connection or Session on the psycopg driver, or Django's
connection (its PostgreSQL backend on psycopg 3).

Each becomes one ``execute(sql, params)`` that runs in the caller's transaction. Through
SQLAlchemy the statement goes through ``exec_driver_sql``, so SQLAlchemy knows a transaction
is open (autobegin) and the caller's ``commit()`` commits it; through Django it goes through
a Django cursor, inside whatever ``atomic()`` block is open. The database is checked without
a round trip (libpq knows where it is connected): a connection to another database is an
error, since workers would never see the messages.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from functools import partial
from typing import Any

from taskq.brokers.postgres.connection import require_psycopg
from taskq.errors import ConfigurationError

Execute = Callable[[str, Sequence[Any]], Any]


def caller_execute(conn: Any, conninfo: str) -> Execute:
    psycopg = require_psycopg()
    if isinstance(conn, psycopg.Connection):
        # Unprepared: psycopg would prepare on the sixth use (an extra round trip, and a
        # server-side statement that PgBouncer in transaction mode cannot keep).
        _check_database(conn, conninfo)
        return partial(conn.execute, prepare=False)
    if _is_django(conn):
        conn.ensure_connection()
        _check_driver(conn.connection, "Django's connection", "its psycopg 3 PostgreSQL backend")
        _check_database(conn.connection, conninfo)
        return partial(_django_execute, conn)
    sa_conn = _sqlalchemy_connection(conn)
    if sa_conn is None:
        raise ConfigurationError(
            "enqueueing in a transaction takes a psycopg connection, a SQLAlchemy Connection or Session"
            f" or Django's connection, not {type(conn).__module__}.{type(conn).__name__}"
        )
    dbapi = sa_conn.connection.dbapi_connection
    _check_driver(dbapi, "the SQLAlchemy connection", "the psycopg driver (postgresql+psycopg://)")
    _check_database(dbapi, conninfo)
    return sa_conn.exec_driver_sql  # type: ignore[no-any-return]


def transaction_for(conn: Any) -> AbstractContextManager[Any]:
    """A transaction block on the caller's connection (a savepoint inside an open one)."""
    if _is_django(conn):
        atomic: Callable[..., AbstractContextManager[Any]] = importlib.import_module("django.db.transaction").atomic
        return atomic(using=conn.alias)
    sa_conn = _sqlalchemy_connection(conn, begin=False)
    if sa_conn is not None:
        return conn.begin_nested() if conn.in_transaction() else conn.begin()  # type: ignore[no-any-return]
    opener = getattr(conn, "transaction", None)
    if opener is None:
        raise ConfigurationError(
            f"app.transaction() takes a psycopg connection, a SQLAlchemy Connection or Session or Django's"
            f" connection, not {type(conn).__module__}.{type(conn).__name__}"
        )
    return opener()  # type: ignore[no-any-return]


def _is_django(conn: Any) -> bool:
    # django.db.connection is a proxy to the wrapper: recognise both by what they do.
    return type(conn).__module__.startswith("django.") and hasattr(conn, "ensure_connection")


def _django_execute(conn: Any, sql: str, params: Sequence[Any]) -> None:
    with conn.cursor() as cursor:
        cursor.execute(sql, params)


def _check_driver(dbapi: Any, what: str, use: str) -> None:
    if not isinstance(dbapi, require_psycopg().Connection):
        raise ConfigurationError(f"{what} uses {type(dbapi).__module__}; use {use}")


def _sqlalchemy_connection(conn: Any, begin: bool = True) -> Any | None:
    try:
        from sqlalchemy.engine import Connection
        from sqlalchemy.orm import Session
    except ImportError:
        return None
    if isinstance(conn, Session):
        return conn.connection() if begin else conn  # the Session's connection, in its transaction
    return conn if isinstance(conn, Connection) else None


def _check_database(conn: Any, conninfo: str) -> None:
    psycopg = require_psycopg()
    wanted = psycopg.conninfo.conninfo_to_dict(conninfo).get("dbname")
    if wanted and conn.info.dbname != wanted:
        raise ConfigurationError(
            f"your connection is to database {conn.info.dbname!r}, the broker's is {wanted!r}: workers would not see it"
        )


def sqlalchemy_errors() -> tuple[type[Exception], ...]:
    """SQLAlchemy's root error, when SQLAlchemy is installed (a caller's statement failing)."""
    try:
        from sqlalchemy.exc import SQLAlchemyError
    except ImportError:
        return ()
    return (SQLAlchemyError,)
