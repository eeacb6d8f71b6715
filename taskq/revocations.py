"""Revocations: task ids that no worker may run, kept on a server every worker reads.

One small store, used by every worker, by ``app.control.revoke``, ``AsyncResult.revoke`` and
``taskq revoke``. It lives on the broker's server when that is SQLite, Redis, PostgreSQL or memory (a
table; a Redis sorted set scored by expiry), else on the result backend's server (a RabbitMQ
broker with a Redis or SQLite backend), so a worker started later honours revocations made
before it. Each entry is kept ``revoke_expires`` seconds (default 3 h, as Celery keeps its
persistent revokes), or the ``expires`` given.

Workers read the whole (small) set at most every ``REFRESH`` seconds, not once per message:
a revoke reaches a live worker within that time. A worker reads it ahead (``refresh_ahead``)
between running tasks and fetching more, so that a task that comes while it is idle does not
wait for that read before it starts. ``revoke`` also records REVOKED in the
result backend for a task not finished yet, so its caller's ``get()`` returns at once, and a
redelivered copy is acked unrun.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterable
from contextlib import suppress
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from taskq import states
from taskq.config import url_scheme
from taskq.errors import BrokerError, ConfigurationError

if TYPE_CHECKING:
    from taskq.app import TaskQ
    from taskq.brokers.redis.connection import RedisConnector

REFRESH = 0.5  # seconds a worker's copy of the set may be old
STORABLE = ("sqlite", "redis", "rediss", "memory", "postgresql", "postgres")


class Terminated(BaseException):
    """Thrown into a running task that ``revoke(terminate=True)`` stops, where a pool can stop
    one from inside its process (-P gevent). A BaseException, as ``SystemExit`` is: a task's
    ``except Exception`` must not swallow it."""


@dataclass(frozen=True)
class Revoked:
    task_id: str
    terminate: bool
    expires_at: float  # time.time()


class RevocationStore(Protocol):
    def add(self, entries: list[Revoked]) -> None: ...
    def active(self, now: float) -> list[Revoked]: ...
    def close(self) -> None: ...


class Revocations:
    """The revocations of one app: ``revoke``, ``is_revoked``, ``terminated``, ``list``."""

    def __init__(self, app: TaskQ) -> None:
        self.app = app
        self._store: RevocationStore | None = None
        self._lock = threading.Lock()
        self._cache: dict[str, bool] = {}  # task id -> terminate
        self._fetched_at = -REFRESH
        self._used = False  # the copy was consulted since it was read (refresh_ahead)
        self._available: bool | None = None

    @property
    def available(self) -> bool:
        """Whether this app has a server to keep revocations on (read once: asked per message)."""
        if self._available is None:
            self._available = _location(self.app) is not None
        return self._available

    @property
    def store(self) -> RevocationStore:
        if self._store is None:
            self._store = open_store(self.app)
        return self._store

    def revoke(self, ids: str | Iterable[str], terminate: bool = False, expires: float | None = None) -> list[str]:
        """Revoke task ids for ``expires`` seconds (default ``revoke_expires``); returns the ids."""
        task_ids = [ids] if isinstance(ids, str) else list(ids)
        if not task_ids or not all(isinstance(i, str) and i for i in task_ids):
            raise ConfigurationError("revoke needs one or more task ids (non-empty strings)")
        keep = self.app.conf.revoke_expires if expires is None else expires
        if not keep > 0:
            raise ConfigurationError(f"revoke expires must be > 0 seconds, not {keep!r}")
        until = time.time() + keep
        self.store.add([Revoked(i, terminate, until) for i in task_ids])
        backend = self.app.backend
        if backend is not None:
            for task_id in task_ids:
                if backend.get_meta(task_id)["status"] not in states.READY_STATES:
                    backend.store(task_id, states.REVOKED, "revoked")
        self._fetched_at = -REFRESH  # this process sees its own revoke at once
        return task_ids

    def list(self) -> list[Revoked]:
        """Every revocation in force, oldest expiry first."""
        return sorted(self.store.active(time.time()), key=lambda r: r.expires_at)

    def is_revoked(self, task_id: str) -> bool:
        return task_id in self._current()

    def terminated(self) -> set[str]:
        """Ids revoked with terminate=True: a worker running one stops it."""
        return {i for i, terminate in self._current().items() if terminate}

    def refresh_ahead(self) -> None:
        """Read the set now, while no task waits for it, if the next task would soon find this
        process's copy too old: the copy was consulted since it was read and is at least half
        ``REFRESH`` old. A worker calls this between running tasks and fetching more: a task
        that arrives within ``REFRESH / 2`` of the last one then starts without a read of its
        own (one round trip on the way to the task, for about one start in a hundred of a
        worker that gets a task every few ms). An unused copy (an idle worker's) costs no read.
        A failed read is left to the next ``is_revoked``, which reads and reports it."""
        if not self._used or time.monotonic() - self._fetched_at < REFRESH / 2 or not self.available:
            return
        with self._lock:
            if time.monotonic() - self._fetched_at >= REFRESH / 2:
                with suppress(BrokerError):
                    self._read()

    def _current(self) -> dict[str, bool]:
        if not self.available:
            return {}
        if time.monotonic() - self._fetched_at >= REFRESH:
            with self._lock:
                if time.monotonic() - self._fetched_at >= REFRESH:
                    self._read()
        self._used = True
        return self._cache  # no lock: it is replaced whole under it

    def _read(self) -> None:
        """Replace the copy with the store's set; called under the lock."""
        self._cache = {r.task_id: r.terminate for r in self.store.active(time.time())}
        self._fetched_at = time.monotonic()
        self._used = False

    def close(self) -> None:
        if self._store is not None:
            self._store.close()
            self._store = None


def _location(app: TaskQ) -> tuple[str, str, str] | None:
    """(url, scheme, redis key prefix) of the server that keeps revocations, or None."""
    conf = app.conf
    scheme = url_scheme(conf.broker_url)
    if scheme in STORABLE:
        return conf.broker_url, scheme, conf.broker_transport_options.get("global_keyprefix", "taskq:")
    backend = conf.result_backend_url
    if backend and url_scheme(backend) in STORABLE:
        prefix = conf.result_backend_transport_options.get("global_keyprefix", "") + "taskq-"
        return backend, url_scheme(backend), prefix
    return None


def open_store(app: TaskQ) -> RevocationStore:
    where = _location(app)
    if where is None:
        raise ConfigurationError(
            "revoke needs a SQLite, Redis or PostgreSQL broker or result backend to keep revocations on"
        )
    url, scheme, prefix = where
    if scheme == "sqlite":
        return SQLiteRevocations(url)
    if scheme in ("postgresql", "postgres"):
        return PostgresRevocations(url)
    if scheme == "memory":
        return MEMORY
    shared = getattr(app.broker, "connector", None) if app.conf.broker_url == url else None
    return RedisRevocations(url, prefix, shared)


class SQLiteRevocations:
    SCHEMA = """CREATE TABLE IF NOT EXISTS taskq_revoked (
        id TEXT PRIMARY KEY, terminate INTEGER NOT NULL, expires_at REAL NOT NULL);"""

    def __init__(self, url: str) -> None:
        from taskq.sqlite_db import SQLiteConnections

        self.db = SQLiteConnections(url, self.SCHEMA, BrokerError, "sqlite revocations")

    def add(self, entries: list[Revoked]) -> None:
        with self.db.transaction() as conn:
            conn.execute("DELETE FROM taskq_revoked WHERE expires_at < ?", (time.time(),))
            conn.executemany(
                "INSERT INTO taskq_revoked VALUES (?, ?, ?) ON CONFLICT(id) DO UPDATE SET "
                "terminate = max(terminate, excluded.terminate), expires_at = max(expires_at, excluded.expires_at)",
                [(r.task_id, int(r.terminate), r.expires_at) for r in entries],
            )

    def active(self, now: float) -> list[Revoked]:
        with self.db.connection() as conn:
            rows = conn.execute("SELECT id, terminate, expires_at FROM taskq_revoked WHERE expires_at >= ?", (now,))
            return [Revoked(i, bool(t), e) for i, t, e in rows]

    def close(self) -> None:
        self.db.close()


class PostgresRevocations:
    """A table in the broker's schema (``?schema=``, default taskq), beside its messages."""

    def __init__(self, url: str) -> None:
        from taskq.brokers.postgres.connection import PgConnections, split_url

        conninfo, schema = split_url(url)
        self.table = f"{schema}.taskq_revoked"  # schema: checked by split_url (letters, digits, _)

        def create(conn: Any) -> None:
            conn.execute(f"CREATE SCHEMA IF NOT EXISTS {schema}")
            conn.execute(
                f"CREATE TABLE IF NOT EXISTS {self.table} "
                "(id TEXT PRIMARY KEY, terminate BOOLEAN NOT NULL, expires_at DOUBLE PRECISION NOT NULL)"
            )

        self.db = PgConnections(conninfo, BrokerError, "postgresql revocations", on_open=create)

    def add(self, entries: list[Revoked]) -> None:
        def work(conn: Any) -> None:
            with conn.transaction():
                conn.execute(f"DELETE FROM {self.table} WHERE expires_at < %s", (time.time(),))
                conn.cursor().executemany(
                    f"INSERT INTO {self.table} VALUES (%s, %s, %s) ON CONFLICT (id) DO UPDATE SET "
                    f"terminate = {self.table}.terminate OR excluded.terminate, "
                    f"expires_at = greatest({self.table}.expires_at, excluded.expires_at)",
                    [(r.task_id, r.terminate, r.expires_at) for r in entries],
                )

        self.db.run(work)

    def active(self, now: float) -> list[Revoked]:
        rows = self.db.run(
            lambda conn: conn.execute(
                f"SELECT id, terminate, expires_at FROM {self.table} WHERE expires_at >= %s", (now,)
            ).fetchall()
        )
        return [Revoked(i, bool(t), float(e)) for i, t, e in rows]

    def close(self) -> None:
        self.db.close()


class RedisRevocations:
    """Two sorted sets scored by expiry: every revoked id, and those to terminate."""

    def __init__(self, url: str, prefix: str, shared: RedisConnector | None = None) -> None:
        """``shared``: the broker's connector when the set lives on the broker's server, so a
        worker process reads it on a connection it has open anyway (not closed here)."""
        from taskq.brokers.redis.connection import RedisConnector

        self.conn = shared if shared is not None else RedisConnector(url)
        self._owned = shared is None
        self.key, self.terminate_key = prefix + "revoked", prefix + "revoked-terminate"

    def add(self, entries: list[Revoked]) -> None:
        with self.conn.errors(BrokerError, "redis revocations"):
            pipe = self.conn.client.pipeline(transaction=True)
            for key, chosen in ((self.key, entries), (self.terminate_key, [r for r in entries if r.terminate])):
                if chosen:
                    pipe.zadd(key, {r.task_id: r.expires_at for r in chosen}, gt=True)
                    pipe.zremrangebyscore(key, "-inf", time.time())
                    pipe.expireat(key, int(max(r.expires_at for r in chosen)) + 1, gt=True)
                    pipe.expireat(key, int(max(r.expires_at for r in chosen)) + 1, nx=True)
            pipe.execute()

    def active(self, now: float) -> list[Revoked]:
        with self.conn.errors(BrokerError, "redis revocations"):
            pipe = self.conn.client.pipeline(transaction=False)
            pipe.zrangebyscore(self.key, now, "+inf", withscores=True)
            pipe.zrangebyscore(self.terminate_key, now, "+inf")
            revoked, terminate = pipe.execute()
        stop = {i.decode() for i in terminate}
        return [Revoked(i.decode(), i.decode() in stop, score) for i, score in revoked]

    def close(self) -> None:
        if self._owned:
            self.conn.close()


class MemoryRevocations:
    """memory:// lives in one process: one table for it."""

    def __init__(self) -> None:
        self._entries: dict[str, Revoked] = {}
        self._lock = threading.Lock()

    def add(self, entries: list[Revoked]) -> None:
        with self._lock:
            for r in entries:
                old = self._entries.get(r.task_id)
                if old is not None:
                    r = Revoked(r.task_id, r.terminate or old.terminate, max(r.expires_at, old.expires_at))
                self._entries[r.task_id] = r

    def active(self, now: float) -> list[Revoked]:
        with self._lock:
            return [r for r in self._entries.values() if r.expires_at >= now]

    def close(self) -> None:
        pass


MEMORY = MemoryRevocations()
