"""redis-py clients for the Redis broker and result backend: lazy, fork-aware, retrying.

Two pools per process. The *command* pool retries a command with exponential backoff
while Redis is unreachable (a restart, a network blip), so ack, extend, publish and
result writes ride out a short outage. The *blocking* pool serves fetch's blocking read
and pub/sub waits; it does not retry, because a blocking caller already loops with its own
deadline and must give control back to the worker when that deadline passes.

Retrying starts once Redis has answered: until then commands go through the pool that does
not retry, so a wrong URL or a server that is not running is one clear error at once (the
CLI's start-up check), not a silent wait of several seconds. A forked child inherits that
knowledge from its parent.

After ``os.fork`` the child must not touch the parent's sockets (two processes reading one
socket interleave replies), so both pools are rebuilt lazily when the pid changes.
"""

from __future__ import annotations

import os
import socket
import threading
import weakref
from collections import deque
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from itertools import chain
from typing import Any

import redis
from redis.backoff import ExponentialBackoff, NoBackoff
from redis.connection import Connection
from redis.retry import Retry

from taskq.errors import TaskQError

# Enough attempts to span a Redis restart of several seconds (backoff 0.1 s doubling to 1 s: ~13 s).
DEFAULT_RETRIES = 16
DEFAULT_SOCKET_TIMEOUT = 10.0
DEFAULT_CONNECT_TIMEOUT = 5.0
CONNECTION_ERRORS = (redis.ConnectionError, redis.TimeoutError, socket.timeout, ConnectionError)


class RedisConnector:
    """Builds and caches this process's redis-py clients for one URL."""

    def __init__(
        self,
        url: str,
        *,
        retries: int = DEFAULT_RETRIES,
        socket_timeout: float = DEFAULT_SOCKET_TIMEOUT,
        connect_timeout: float = DEFAULT_CONNECT_TIMEOUT,
    ) -> None:
        self.url = url
        self.retries = retries
        self.socket_timeout = socket_timeout
        self.connect_timeout = connect_timeout
        self._lock = threading.Lock()
        self._pid = -1
        self._clients: tuple[redis.Redis, redis.Redis] | None = None  # (command, blocking)
        self.reached = False  # Redis answered once: from then on, commands retry
        self._local = threading.local()  # this thread's own connection for direct()
        self._direct_connections: weakref.WeakSet[Connection] = weakref.WeakSet()
        _CONNECTORS.add(self)

    def _pool(self, retries: int) -> redis.ConnectionPool:
        options: dict[str, Any] = {
            "socket_timeout": self.socket_timeout,
            "socket_connect_timeout": self.connect_timeout,
            "socket_keepalive": True,
            "health_check_interval": 30,
            "retry": Retry(ExponentialBackoff(cap=1.0, base=0.05), retries, supported_errors=CONNECTION_ERRORS),
            "retry_on_error": list(CONNECTION_ERRORS),
        }
        # from_url understands redis://, rediss:// (TLS) and unix:// and their query options.
        return redis.ConnectionPool.from_url(self.url, **options)

    def _ensure(self) -> tuple[redis.Redis, redis.Redis]:
        clients = self._clients
        if clients is not None and self._pid == os.getpid():
            return clients  # the common path: no lock
        with self._lock:
            if self._clients is None or self._pid != os.getpid():
                # A new process (or after close): fresh pools; the parent's are left alone.
                command = redis.Redis(connection_pool=self._pool(self.retries))
                blocking = redis.Redis(connection_pool=self._pool(0))
                self._clients, self._pid = (command, blocking), os.getpid()
            return self._clients

    @property
    def client(self) -> redis.Redis:
        """Commands, retried while Redis comes back (once it has answered at all)."""
        command, blocking = self._ensure()
        return command if self.reached else blocking

    @property
    def blocking(self) -> redis.Redis:
        """Blocking reads and pub/sub; a connection error reaches the caller at once."""
        return self._ensure()[1]

    def direct(self, error: type[TaskQError], what: str, *args: Any) -> Any:
        """One command on this thread's own connection (see ``direct_many``)."""
        return self.direct_many(error, what, [args])[0]

    def direct_many(self, error: type[TaskQError], what: str, commands: Iterable[Sequence[Any]]) -> list[Any]:
        """Commands on this thread's own connection, outside the pool, with one in flight:
        each is written before the previous one's reply is read, so whatever produces the
        next command (encoding a chunk of messages) runs while Redis executes the last.
        Replies in order; errors translated.

        Taking a connection from redis-py's pool and giving it back costs more than the
        round trip itself on loopback (about 55 us of 100 us for an XADD, measured), so the
        hottest commands (publish) skip the pool. A connection error drops the connection
        and sends the unanswered commands once more through the pooled client, whose retry
        rides out an outage (at least once: a command may have run before the error). An
        error reply (a script error, WRONGTYPE) stops the sending: the reply in flight is
        read, so the connection stays in step, and the error says how many calls completed."""
        pending = iter(commands)
        replies: list[Any] = []
        unanswered: deque[Sequence[Any]] = deque()
        refused: redis.ResponseError | None = None
        try:
            conn = self._thread_connection()
            try:
                for args in pending:
                    # redis-py's health-check PING would read the reply in flight: only when idle.
                    idle = not unanswered
                    unanswered.append(args)  # before sending: a failed send is resent too
                    conn.send_command(*args, check_health=idle)  # type: ignore[no-untyped-call]
                    if len(unanswered) > 1:
                        refused = _read_reply(conn, unanswered, replies)
                        if refused is not None:
                            break
                while unanswered:
                    later = _read_reply(conn, unanswered, replies)
                    refused = refused or later
            except CONNECTION_ERRORS:
                conn.disconnect()  # type: ignore[no-untyped-call]
                for args in chain(unanswered, pending):
                    replies.append(self.client.execute_command(*args))  # type: ignore[no-untyped-call]
            except BaseException:
                conn.disconnect()  # type: ignore[no-untyped-call]  # a reply may be left unread on it
                raise
            if refused is not None:
                done = sum(1 for reply in replies if not isinstance(reply, redis.ResponseError))
                raise redis.ResponseError(f"{refused} (after {done} call(s) completed)")
        except (redis.RedisError, OSError) as exc:
            raise translated(error, what, exc) from None
        self.reached = True
        return replies

    def _thread_connection(self) -> Connection:
        local = self._local
        conn: Connection | None = getattr(local, "conn", None)
        if conn is not None and local.pid == os.getpid():
            return conn
        return self._direct_connection()

    def _direct_connection(self) -> Connection:
        pool = self.client.connection_pool
        # No retries of its own: a failure falls back to the pooled client, which retries.
        options = {**pool.connection_kwargs, "retry": Retry(NoBackoff(), 0)}
        conn: Connection = pool.connection_class(**options)
        self._local.conn, self._local.pid = conn, os.getpid()
        with self._lock:
            self._direct_connections.add(conn)
        return conn

    @contextmanager
    def errors(self, error: type[TaskQError], what: str) -> Iterator[None]:
        """Translate errors at the boundary; a block that completes shows Redis is reachable."""
        with translate_errors(error, what):
            yield
        self.reached = True

    def close(self) -> None:
        with self._lock:
            clients, self._clients = self._clients, None
            same_process = self._pid == os.getpid()
        if not same_process:
            return
        if clients is not None:
            for client in clients:
                client.connection_pool.disconnect()
        with self._lock:
            direct = list(self._direct_connections)
        for conn in direct:
            conn.disconnect()  # type: ignore[no-untyped-call]  # reconnects on its next command


# A lock held by another thread at fork time stays held in the child: replace them there.
_CONNECTORS: weakref.WeakSet[RedisConnector] = weakref.WeakSet()


def _reset_locks() -> None:
    for connector in list(_CONNECTORS):
        connector._lock = threading.Lock()


os.register_at_fork(after_in_child=_reset_locks)


@contextmanager
def translate_errors(error: type[TaskQError], what: str) -> Iterator[None]:
    """Turn redis-py's errors into taskq's tree, once, at the boundary."""
    try:
        yield
    except (redis.RedisError, OSError) as exc:  # OSError: a socket error redis-py did not wrap
        raise translated(error, what, exc) from None


def _read_reply(conn: Connection, unanswered: deque[Sequence[Any]], replies: list[Any]) -> redis.ResponseError | None:
    """Read the oldest reply in flight into ``replies``; an error reply is returned, not raised."""
    try:
        reply = conn.read_response()
    except redis.ResponseError as exc:
        reply = exc
    unanswered.popleft()
    replies.append(reply)
    return reply if isinstance(reply, redis.ResponseError) else None


def translated(error: type[TaskQError], what: str, exc: BaseException) -> TaskQError:
    return error(f"{what}: {type(exc).__name__}: {exc}")
