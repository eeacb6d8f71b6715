"""psycopg 3 connections for the PostgreSQL broker: lazy, one per thread, fork-aware.

One autocommit connection per thread and per process: a fetching thread LISTENs on its own
connection and waits there, while the claim keeper extends claims on another, so neither
waits for the other's round trip. After ``os.fork`` a child opens its own (two processes
reading one socket would interleave replies). A connection that fails is dropped, and the
next use opens a new one, so a server restart costs the caller one error, not a dead broker.
"""

from __future__ import annotations

import os
import re
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from taskq.display import redact
from taskq.errors import ConfigurationError, TaskQError

try:
    import psycopg
except ImportError:  # pragma: no cover - exercised only without the extra
    psycopg = None  # type: ignore[assignment]

T = TypeVar("T")
SCHEMES = ("postgresql", "postgres")
DEFAULT_SCHEMA = "taskq"
CONNECT_TIMEOUT = 5
# Lower-case identifiers only: they need no quoting rules beyond double quotes, and the
# LISTEN channel built from them stays under PostgreSQL's 63-byte identifier limit.
SCHEMA_NAME = re.compile(r"^[a-z_][a-z0-9_]{0,49}$")


def require_psycopg() -> Any:
    if psycopg is None:
        raise ConfigurationError("postgresql:// needs psycopg 3: pip install 'taskq[postgresql]'")
    return psycopg


def split_url(url: str) -> tuple[str, str]:
    """``postgresql://u@h/db?schema=s&sslmode=x`` -> (libpq URI without ``schema``, ``s``)."""
    parts = urlsplit(url)
    if parts.scheme not in SCHEMES:
        raise ConfigurationError(f"PostgreSQL URL {redact(url)!r} must start with postgresql://")
    params = parse_qsl(parts.query, keep_blank_values=True)
    schema = DEFAULT_SCHEMA
    rest = []
    for key, value in params:
        if key == "schema":
            schema = value
        else:
            rest.append((key, value))
    if not SCHEMA_NAME.match(schema):
        raise ConfigurationError(
            f"PostgreSQL URL {redact(url)!r}: schema {schema!r} must be lower-case letters, digits and _ (at most 50)"
        )
    return urlunsplit(("postgresql", parts.netloc, parts.path, urlencode(rest), "")), schema


def driver_error() -> type[Exception]:
    """psycopg's root error class (the driver is imported only when installed)."""
    error: type[Exception] = require_psycopg().Error
    return error


class PgConnections:
    """This process's connections to one database, one per thread.

    ``on_open`` runs on each new connection before first use (the broker checks its tables
    there); ``error`` is the taskq error psycopg errors become at this boundary.
    """

    def __init__(
        self,
        conninfo: str,
        error: type[TaskQError],
        what: str,
        on_open: Callable[[Any], None] | None = None,
    ) -> None:
        require_psycopg()
        self.conninfo = conninfo
        self.error = error
        self.what = what
        self.on_open = on_open
        self._local = threading.local()
        self._lock = threading.Lock()
        self._all: list[Any] = []
        self._pid = os.getpid()

    def get(self) -> Any:
        """This thread's open connection (a new one after a fork, a failure or close())."""
        conn = getattr(self._local, "conn", None)
        if conn is not None and self._local.pid == os.getpid() and not conn.closed:
            return conn
        try:
            conn = psycopg.connect(self.conninfo, autocommit=True, connect_timeout=CONNECT_TIMEOUT)
        except psycopg.Error as exc:
            raise self.error(f"{self.what}: cannot connect: {one_line(exc)}") from None
        try:
            if self.on_open is not None:
                self.on_open(conn)
        except psycopg.Error as exc:
            conn.close()
            raise self.error(f"{self.what}: {one_line(exc)}") from None
        except BaseException:
            conn.close()
            raise
        self._local.conn, self._local.pid, self._local.fresh = conn, os.getpid(), True
        with self._lock:
            self._forget_parents()
            self._all = [c for c in self._all if not c.closed] + [conn]
        return conn

    def _forget_parents(self) -> None:
        """After a fork the parent's connections are not ours to close (psycopg itself never
        ends a connection from a process other than the one that opened it)."""
        if self._pid != os.getpid():
            self._all, self._pid = [], os.getpid()

    @contextmanager
    def connection(self) -> Iterator[Any]:
        """This thread's connection, psycopg errors translated; a broken one is dropped."""
        conn = self.get()
        self._local.fresh = False
        try:
            yield conn
        except psycopg.Error as exc:
            if conn.closed or conn.broken or isinstance(exc, psycopg.OperationalError):
                self.drop()
            raise self.error(f"{self.what}: {one_line(exc)}") from None

    def run(self, work: Callable[[Any], T]) -> T:
        """``work(conn)`` with errors translated. A connection that served before and is found
        dead (a server restart, a network cut, an idle timeout) is replaced and the work runs
        once more, so a producer does not fail on a stale connection. The work must be safe
        to repeat: at worst a message is stored twice, which at-least-once allows."""
        conn = self.get()
        reused = not getattr(self._local, "fresh", False)
        self._local.fresh = False
        try:
            return work(conn)
        except psycopg.OperationalError as exc:
            self.drop()
            if not reused:
                raise self.error(f"{self.what}: {one_line(exc)}") from None
        except psycopg.Error as exc:
            if conn.closed or conn.broken:
                self.drop()
            raise self.error(f"{self.what}: {one_line(exc)}") from None
        with self.connection() as conn:
            return work(conn)

    def drop(self) -> None:
        """Forget this thread's connection (after a failure); the next use reconnects."""
        conn = getattr(self._local, "conn", None)
        self._local.conn = None
        if conn is not None and self._local.pid == os.getpid():
            conn.close()

    def close(self) -> None:
        """Close every connection this process opened; later use reconnects."""
        with self._lock:
            self._forget_parents()
            mine, self._all = self._all, []
        for conn in mine:
            conn.close()
        self._local.conn = None


def one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split()) or type(exc).__name__

