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

A ``redis+cluster://`` URL builds redis-py's RedisCluster (it follows MOVED replies and a
failover by itself), a ``redis+sentinel://`` URL a client of the master the sentinels name
(it asks them again after a connection error); both through ``_make_client``. Neither has
the direct per-thread connection: their commands go through the client, which routes them.
"""

from __future__ import annotations

import os
import socket
import threading
import time
import weakref
from collections import deque
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from itertools import chain
from typing import Any, cast

import redis
from hiredis import pack_command
from redis.backoff import ExponentialBackoff, NoBackoff
from redis.cluster import ClusterNode, RedisCluster
from redis.connection import Connection
from redis.exceptions import (
    ClusterDownError,
    MovedError,
    ReadOnlyError,
    RedisClusterException,
    RedisClusterUnreachableError,
    SlotNotCoveredError,
    TryAgainError,
)
from redis.retry import Retry
from redis.sentinel import MasterNotFoundError, Sentinel

from taskq.brokers.redis.gathered import send_gathered
from taskq.brokers.redis.urls import CLUSTER, SCHEMES, SENTINEL, Topology, parse_topology
from taskq.errors import TaskQError
from taskq.forklocks import renew_after_fork

# Enough attempts to span a Redis restart of several seconds (backoff 0.1 s doubling to 1 s: ~13 s).
DEFAULT_RETRIES = 16
DEFAULT_SOCKET_TIMEOUT = 10.0
DEFAULT_CONNECT_TIMEOUT = 5.0
# redis-py 8 caps a pool at 100 connections and then raises "Too many connections"; a worker
# holds one or two per consumer slot (-P gevent -c 500: about 1000). Redis's own default
# maxclients is the limit that matters; a max_connections query option in the URL still wins.
MAX_CONNECTIONS = 10_000
DROPPED = (redis.ConnectionError, redis.TimeoutError, socket.timeout, ConnectionError)
# What a failover looks like to a client: the cluster has no master for a slot yet, the old
# master came back as a replica (READONLY), the sentinels name no master yet. Waited out like
# a dropped connection; retried by the clients of clustered URLs only (on a single server,
# READONLY means a wrong URL: one error at once, as before).
CONNECTION_ERRORS = (
    *DROPPED, ClusterDownError, TryAgainError, SlotNotCoveredError, ReadOnlyError, MasterNotFoundError,
    RedisClusterUnreachableError,
)


class Parts(tuple[Any, ...]):
    """A command whose last argument is given in parts (a small header, a big body), for
    ``direct``/``direct_many``: framed here and written to the socket as it is. redis-py's
    packer copies every argument into one buffer, and joining the parts first is another
    copy: for a 1 MB message that is two fresh megabytes, page faults included (1-2 ms
    each on a loaded machine). The tuple holds the other arguments."""

    parts: tuple[bytes | memoryview, ...]

    def __new__(cls, args: Sequence[str | bytes], parts: Sequence[bytes | memoryview]) -> Parts:
        command = super().__new__(cls, args)
        command.parts = tuple(parts)
        return command

    def framed(self) -> list[bytes | memoryview]:
        """RESP: the array and bulk headers, then the parts themselves."""
        out = [b"*%d\r\n" % (len(self) + 1)]
        for arg in self:
            raw = arg.encode() if isinstance(arg, str) else arg
            out.append(b"$%d\r\n%b\r\n" % (len(raw), raw))
        out.append(b"$%d\r\n" % sum(len(part) for part in self.parts))
        return [b"".join(out), *self.parts, b"\r\n"]

    def joined(self) -> tuple[Any, ...]:
        """The command as redis-py's clients take it (a fallback or a routed client)."""
        return (*self, b"".join(self.parts))


class Plain(tuple[str | bytes, ...]):
    """A command of str and bytes arguments only, for ``direct``/``direct_many``: packed by
    hiredis in one call. redis-py's packer checks and encodes each argument in Python (about
    55 calls for a five-argument XADD, more than the rest of a ``delay()``'s send); for str
    and bytes both give the same bytes (tests/unit/test_gathered_send.py)."""


def _args(command: Sequence[Any]) -> Sequence[Any]:
    return command.joined() if type(command) is Parts else command


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
        self.topology: Topology | None = parse_topology(url) if url.split("://")[0].lower() in SCHEMES else None
        self.clustered = self.topology is not None and self.topology.kind == CLUSTER
        self.retries = retries
        self.socket_timeout = socket_timeout
        self.connect_timeout = connect_timeout
        self._lock = threading.Lock()
        self._pid = -1
        self._clients: tuple[redis.Redis, redis.Redis] | None = None  # (command, blocking)
        self.reached = False  # Redis answered once: from then on, commands retry
        self._local = threading.local()  # this thread's own connection for direct()
        self._direct_connections: weakref.WeakSet[Connection] = weakref.WeakSet()
        renew_after_fork(self, _renew_lock)  # another thread may hold it when a pool forks

    def _options(self, retries: int) -> dict[str, Any]:
        retried = CONNECTION_ERRORS if self.topology is not None else DROPPED
        return {
            "socket_timeout": self.socket_timeout,
            "socket_connect_timeout": self.connect_timeout,
            "socket_keepalive": True,
            "max_connections": MAX_CONNECTIONS,
            "health_check_interval": 30,
            "retry": Retry(ExponentialBackoff(cap=1.0, base=0.05), retries, supported_errors=retried),
            "retry_on_error": list(retried),
        }

    def _make_client(self, retries: int) -> redis.Redis:
        options = self._options(retries)
        topology = self.topology
        if topology is None:
            # from_url understands redis://, rediss:// (TLS) and unix:// and their query options.
            return redis.Redis(connection_pool=redis.ConnectionPool.from_url(self.url, **options))
        credentials: dict[str, Any] = {"username": topology.username, "password": topology.password}
        if topology.kind == SENTINEL:
            asked = {k: options[k] for k in ("socket_timeout", "socket_connect_timeout")}
            sentinel = Sentinel(list(topology.hosts), sentinel_kwargs=asked, **asked)
            master: redis.Redis = sentinel.master_for(topology.service, db=topology.db, **options, **credentials)
            return master
        del options["retry_on_error"], options["health_check_interval"]
        nodes = [ClusterNode(host, port) for host, port in topology.hosts]  # type: ignore[no-untyped-call]
        # RedisCluster offers the command methods of redis.Redis (the callers' type).
        return cast(redis.Redis, RedisCluster(startup_nodes=nodes, **options, **credentials))

    def _ensure(self) -> tuple[redis.Redis, redis.Redis]:
        clients = self._clients
        if clients is not None and self._pid == os.getpid():
            return clients  # the common path: no lock
        with self._lock:
            if self._clients is None or self._pid != os.getpid():
                # A new process (or after close): fresh pools; the parent's are left alone.
                command = self._make_client(self.retries)
                blocking = self._make_client(0)
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
        """Commands on this thread's own connection, outside the pool, with one in flight
        (a command may be ``Parts``: its big last argument is sent without a copy):
        each is written before the previous one's reply is read, so whatever produces the
        next command (encoding a chunk of messages) runs while Redis executes the last.
        Replies in order; errors translated.

        Taking a connection from redis-py's pool and giving it back costs more than the
        round trip itself on loopback (about 55 us of 100 us for an XADD, measured), so the
        hottest commands (publish) skip the pool. A connection error drops the connection
        and sends the unanswered commands once more through the pooled client, whose retry
        rides out an outage (at least once: a command may have run before the error). An
        error reply (a script error, WRONGTYPE) stops the sending: the reply in flight is
        read, so the connection stays in step, and the error says how many calls completed.

        A cluster or sentinel client sends each command through the client, which routes it."""
        if self.topology is not None:
            with self.errors(error, what):
                return [self.client.execute_command(*_args(args)) for args in commands]  # type: ignore[no-untyped-call]
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
                    if type(args) is Parts:
                        send_gathered(conn, args.framed(), check_health=idle)
                    elif type(args) is Plain:
                        packed = pack_command(args)  # type: ignore[arg-type]  # its stub takes a 1-tuple
                        conn.send_packed_command([packed], check_health=idle)  # type: ignore[no-untyped-call]
                    else:
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
                    replies.append(self.client.execute_command(*_args(args)))  # type: ignore[no-untyped-call]
            except BaseException:
                conn.disconnect()  # type: ignore[no-untyped-call]  # a reply may be left unread on it
                raise
            if refused is not None:
                done = sum(1 for reply in replies if not isinstance(reply, redis.ResponseError))
                raise redis.ResponseError(f"{refused} (after {done} call(s) completed)")
        except (redis.RedisError, OSError, RedisClusterException) as exc:
            raise translated(error, what, exc) from None
        self.reached = True
        return replies

    def transaction(self, error: type[TaskQError], what: str, commands: Sequence[Plain]) -> list[Any]:
        """``commands`` in one MULTI/EXEC, written at once on this thread's own connection and
        packed by hiredis: redis-py's transaction pipeline checks and encodes each argument
        in Python and parses each reply through its callbacks, about 6 µs of a result's
        SET + PUBLISH (a worker writes one per task). EXEC's replies, raw (through redis-py's
        callbacks after a fallback); an error reply (queued or run) raises once every reply
        is read, so the connection stays in step and in use.
        A connection error drops the connection and runs the transaction once more through
        the pooled client, whose retry rides out an outage (at least once)."""
        if self.topology is None:
            try:
                conn = self._thread_connection()
                try:
                    return self._transaction_on(conn, commands)
                except CONNECTION_ERRORS:
                    conn.disconnect()  # type: ignore[no-untyped-call]
                except redis.ResponseError:
                    raise  # every reply was read: the connection stays
                except BaseException:
                    conn.disconnect()  # type: ignore[no-untyped-call]  # a reply may be left unread on it
                    raise
            except (redis.RedisError, OSError, RedisClusterException) as exc:
                raise translated(error, what, exc) from None
        with self.errors(error, what):
            pipe = self.client.pipeline(transaction=True)
            for command in commands:
                pipe.execute_command(*command)  # type: ignore[no-untyped-call]
            return pipe.execute()

    def _transaction_on(self, conn: Connection, commands: Sequence[Plain]) -> list[Any]:
        packed = [_MULTI, *(pack_command(command) for command in commands), _EXEC]  # type: ignore[arg-type]
        conn.send_packed_command([b"".join(packed)])  # type: ignore[no-untyped-call]  # one write (a list is one each)
        refused: redis.ResponseError | None = None
        for _ in range(len(packed)):  # MULTI's OK, a QUEUED each, then EXEC's list
            try:
                replies = conn.read_response()
            except redis.ResponseError as exc:  # a queued command refused, EXECABORT, an error run
                refused = refused or exc
        if refused is None:  # a command that ran into an error is one of EXEC's replies
            refused = next((reply for reply in replies if isinstance(reply, redis.ResponseError)), None)
        if refused is not None:
            raise refused
        self.reached = True
        return cast(list[Any], replies)

    def confirmed(
        self, error: type[TaskQError], what: str, command: Sequence[Any], key: str, replicas: int, timeout: float
    ) -> Any:
        """Run ``command`` and then ``WAIT replicas timeout`` on one connection to the master
        that holds ``key``: the reply comes back only once that many replicas have the write,
        so a failover that promotes one of them keeps it. Fewer replicas in time is an error
        (the write may survive: a retry can duplicate it, never lose it). A connection error
        or a moved slot (a failover under way) refreshes the topology and tries again, as
        often as the command pool retries."""
        attempts = max(self.retries, 1)
        backoff = ExponentialBackoff(cap=1.0, base=0.05)
        for attempt in range(1, attempts + 1):
            try:
                client = self.client
                if self.clustered:
                    cluster: Any = client
                    client = cluster.get_redis_connection(cluster.get_node_from_key(key))
                pipe = client.pipeline(transaction=False)
                pipe.execute_command(*command)  # type: ignore[no-untyped-call]
                pipe.execute_command("WAIT", replicas, max(int(timeout * 1000), 1))  # type: ignore[no-untyped-call]
                reply, acked = pipe.execute()
            except (*CONNECTION_ERRORS, MovedError) as exc:
                if attempt == attempts:
                    raise translated(error, what, exc) from None
                self._refresh()
                time.sleep(backoff.compute(attempt))
                continue
            except (redis.RedisError, OSError, RedisClusterException) as exc:
                raise translated(error, what, exc) from None
            self.reached = True
            if int(acked) < replicas:
                raise error(f"{what}: only {acked} of {replicas} replica(s) confirmed the write within {timeout} s")
            return reply
        raise AssertionError("unreachable")  # the loop returns or raises

    def _refresh(self) -> None:
        """After a failover: a cluster client learns the new slot owners again."""
        if not self.clustered:
            return
        cluster: Any = self.client
        try:
            cluster.nodes_manager.initialize()
        except (redis.RedisError, OSError, RedisClusterException):
            pass  # still electing: the next attempt refreshes again

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
                if self.clustered:
                    client.close()
                else:
                    client.connection_pool.disconnect()
        with self._lock:
            direct = list(self._direct_connections)
        for conn in direct:
            conn.disconnect()  # type: ignore[no-untyped-call]  # reconnects on its next command


def make_client(url: str, retries: int = 0) -> redis.Redis:
    """One client for a redis://, redis+cluster:// or redis+sentinel:// URL, for a caller that
    manages its own (beat's schedule store): the options the connector uses, no pools kept."""
    connector = RedisConnector(url, retries=retries)
    return connector._make_client(retries)


def _renew_lock(connector: RedisConnector) -> None:
    connector._lock = threading.Lock()


@contextmanager
def translate_errors(error: type[TaskQError], what: str) -> Iterator[None]:
    """Turn redis-py's errors into taskq's tree, once, at the boundary."""
    try:
        yield
    # OSError: a socket error redis-py did not wrap; RedisClusterException: not a RedisError
    except (redis.RedisError, OSError, RedisClusterException) as exc:
        raise translated(error, what, exc) from None


_MULTI, _EXEC = pack_command(("MULTI",)), pack_command(("EXEC",))


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
