"""The caller's connection, for enqueueing inside the caller's transaction: a psycopg 3
Connection, or a SQLAlchemy Connection or Session on the psycopg driver.

Each becomes one ``execute(sql, params)`` that runs in the caller's transaction. Through
SQLAlchemy the statement goes through ``exec_driver_sql``, so SQLAlchemy knows a transaction
is open (autobegin) and the caller's ``commit()`` commits it. The database is checked
without a round trip (libpq knows where it is connected): a connection to another database
is an error, since workers would never see the messages.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
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
    sa_conn = _sqlalchemy_connection(conn)
    if sa_conn is None:
        raise ConfigurationError(
            "enqueueing in a transaction takes a psycopg connection or a SQLAlchemy Connection or Session,"
            f" not {type(conn).__module__}.{type(conn).__name__}"
        )
    dbapi = sa_conn.connection.dbapi_connection
    if not isinstance(dbapi, psycopg.Connection):
        raise ConfigurationError(
            f"the SQLAlchemy connection uses {type(dbapi).__module__}; use the psycopg driver (postgresql+psycopg://)"
        )
    _check_database(dbapi, conninfo)
    return sa_conn.exec_driver_sql  # type: ignore[no-any-return]


def _sqlalchemy_connection(conn: Any) -> Any | None:
    try:
        from sqlalchemy.engine import Connection
        from sqlalchemy.orm import Session
    except ImportError:
        return None
    if isinstance(conn, Session):
        return conn.connection()  # the Session's connection, in its transaction
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
