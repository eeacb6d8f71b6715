"""How a fetcher over many queues waits while they are idle (a mixin of RedisBroker).

Scanning 10,000 queues costs Redis about 40,000 commands, so an idle fetcher must not scan
again after each blocking read. Once a full scan took nothing, the fetcher keeps where each of
its streams ended (the fetch script's ``tails``) and waits in one ``XREAD BLOCK`` from those
ids on every lane in use and every wake stream: any entry published since wakes it, and it
then runs the fetch script on just the queues that woke it. It also runs the script on a
queue whose delayed message is due (the scan reported each queue's next eta) and on its
queues that the claims index says are due for a look at abandoned claims (read once per
``recovery_check`` while the index names one of them, else once per ``claim_timeout``).

The blocking read claims nothing (``XREAD``, not ``XREADGROUP``): every claim is taken by the
fetch script, which writes the claims index in the same call, so a SIGKILL at any instant
leaves every claim where recovery finds it. docs/redis.md ("Many queues") has the reasoning.

A queue that gave messages stays *hot*: the next fetch runs the script on it first, until a
call over it takes nothing (which brings its tails up to date). While queues stay hot for
longer than ``max_block`` the fetcher goes back to full scans by turns, which serve every
queue in turn under load.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from taskq.brokers.base import Delivery
from taskq.brokers.redis.cluster import _Found
from taskq.brokers.redis.connection import CONNECTION_ERRORS, RedisConnector

WINDOW = 32  # queues per fetch script call when a worker consumes more (RedisBroker._claim_any)
INDEX_READ = 10_000  # lanes whose claims index scores one command reads (ZMSCORE) in a look


@dataclass
class Watch:
    """One thread's view of its idle queues (valid for this exact list of queues)."""

    queues: tuple[str, ...]
    tails: dict[str, str]  # stream -> id of its last entry seen
    owner: dict[str, str]  # stream -> its queue
    dues: dict[str, float]  # queue -> eta of its next delayed message
    next_recovery: float = 0.0  # time.time() of the next look at the claims index
    hot: list[str] = field(default_factory=list)
    hot_since: float = 0.0  # time.monotonic() when the hot list last became non-empty

    def learn(self, found: _Found, queues: Sequence[str]) -> None:
        """What a script call over ``queues`` reported: their etas and, if it took nothing,
        where their streams end (those queues are then no longer hot)."""
        for queue in queues:
            if queue in found.dues:
                self.dues[queue] = found.dues[queue]
            else:
                self.dues.pop(queue, None)
        if found.tails is not None:
            self.tails.update(found.tails)
            self.owner.update(found.owners)
            done = set(queues)
            self.hot = [q for q in self.hot if q not in done]


class _Broker(Protocol):
    claim_timeout: float
    recovery_check: float
    max_block: float
    idle_block: float
    socket_timeout: float
    clustered: bool
    _conn: RedisConnector
    _local: threading.local
    _stopping: bool
    _reading: set[Any]

    def claims_key(self, queue: str) -> str: ...
    def _claim(
        self,
        queues: list[str],
        max_count: int,
        mark: bool = False,
        tails: bool = False,
        acks: list[Delivery] | None = None,
    ) -> tuple[list[Delivery], _Found]: ...
    def _claim_any(
        self, queues: list[str], max_count: int, acks: list[Delivery] | None = None
    ) -> tuple[list[Delivery], _Found]: ...
    def _claim_hot(self, watch: Watch, max_count: int) -> list[Delivery]: ...
    def _look_for_claims(self, watch: Watch) -> list[str]: ...
    def _watch_read(self, streams: dict[str, str], wait: float) -> list[str]: ...


def watches(queues: Sequence[str], clustered: bool) -> bool:
    """Whether a fetch over ``queues`` waits by watching (else it scans before each blocking
    read, which claims: cheap for a few queues, and one round trip less on a wake-up)."""
    return not clustered and len(set(queues)) > WINDOW


class IdleWatch:
    # -- InterruptibleFetch (taskq/brokers/base.py) -------------------------------------------
    def fetch_timeout(self: _Broker, queues: Sequence[str], default: float) -> float:
        """A watching fetch may wait ``idle_block``: its wait ends early on a stop."""
        if self._stopping or not watches(queues, self.clustered):
            return default
        return max(default, self.idle_block)

    def interrupt_fetch(self: _Broker) -> None:
        """Shut the socket of any watch read in flight (it then returns nothing: the read
        claims nothing, so nothing is stranded). No lock: a signal handler may call this."""
        self._stopping = True
        for conn in list(self._reading):
            sock = getattr(conn, "_sock", None)
            if sock is not None:
                try:
                    sock.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    def _drop_watch(self: _Broker) -> None:
        self._local.watch = None

    def _watch_fetch(self: _Broker, queues: list[str], max_count: int, deadline: float) -> list[Delivery]:
        watch: Watch | None = getattr(self._local, "watch", None)
        if watch is not None and watch.queues != tuple(queues) and set(watch.queues) == set(queues):
            watch.queues = tuple(queues)  # the same queues in another order (fair_queues takes turns)
        if watch is None or watch.queues != tuple(queues):
            self._local.watch = None
            taken, found = self._claim_any(queues, max_count)
            if taken or found.tails is None:
                return taken
            watch = Watch(tuple(queues), dict(found.tails), dict(found.owners), dict(found.dues))
            # next_recovery 0: the first wait starts with a look at the claims index, which
            # learns when the lanes indexed but not yet due come due.
            self._local.watch = watch
        else:
            taken = self._claim_hot(watch, max_count)
            if taken:
                return taken
        now = time.time()
        # No max_block here: nothing but what the read watches, a due eta or a due look at the
        # claims index can bring work, so the fetch's own timeout bounds the wait.
        wait = min(deadline - time.monotonic(), watch.next_recovery - now)
        if watch.dues:
            wait = min(wait, min(watch.dues.values()) - now)
        if self._stopping:
            wait = min(wait, self.max_block)
        if wait > 0.001:
            for stream in self._watch_read(watch.tails, wait):
                queue = watch.owner.get(stream)
                if queue is not None and queue not in watch.hot:
                    if not watch.hot:
                        watch.hot_since = time.monotonic()
                    watch.hot.append(queue)
        return self._claim_hot(watch, max_count)

    def _watch_read(self: _Broker, streams: dict[str, str], wait: float) -> list[str]:
        """XREAD BLOCK from these ids: the streams that have new entries (none when the wait
        ends or a stop interrupts it). On a connection of its own, with a read timeout past
        the wait (an idle wait may be longer than the socket timeout)."""
        pool = self._conn.blocking.connection_pool
        conn: Any = pool.get_connection()
        stopping = self._stopping
        self._reading.add(conn)
        block = max(int(wait * 1000), 1)
        try:
            if self._stopping and not stopping:
                return []  # interrupted before its socket was listed: do not wait
            conn.send_command("XREAD", "COUNT", 1, "BLOCK", block, "STREAMS", *streams, *streams.values())
            reply: Any = conn.read_response(timeout=wait + self.socket_timeout)
        except CONNECTION_ERRORS:
            conn.disconnect()
            if self._stopping and not stopping:
                return []  # interrupt_fetch shut the socket
            raise
        except BaseException:
            conn.disconnect()
            raise
        finally:
            self._reading.discard(conn)
            pool.release(conn)
        if not reply:
            return []
        names = reply.keys() if isinstance(reply, dict) else (item[0] for item in reply)
        return [name.decode() if isinstance(name, bytes) else str(name) for name in names]

    def _claim_hot(self: _Broker, watch: Watch, max_count: int) -> list[Delivery]:
        """Run the fetch script on the hot queues, those with a delayed message due and those
        the claims index says are due, in the worker's order, WINDOW at a time."""
        now = time.time()
        wanted = set(watch.hot)
        wanted.update(q for q, eta in watch.dues.items() if eta <= now)
        if now >= watch.next_recovery:
            wanted.update(self._look_for_claims(watch))
        if not wanted:
            return []
        if not watch.hot:
            watch.hot_since = time.monotonic()
        order = [q for q in watch.queues if q in wanted]
        watch.hot = order
        for start in range(0, len(order), WINDOW):
            window = order[start : start + WINDOW]
            taken, found = self._claim(window, max_count, tails=True)
            watch.learn(found, window)
            if taken:
                if time.monotonic() - watch.hot_since > self.max_block:
                    self._local.watch = None  # busy for a while: full scans by turns are fairer
                return taken
        return []

    def _look_for_claims(self: _Broker, watch: Watch) -> list[str]:
        """The worker's queues the claims index says are due; schedules the next look."""
        now = time.time()
        # Its own lanes' scores, not the index's first entries: lanes due that no fetcher looks
        # at (queues nobody consumes any more) would fill those for good.
        lanes = [stream for stream in watch.owner if stream.rsplit(":", 1)[1].isdigit()]
        pipe = self._conn.blocking.pipeline(transaction=False)
        for start in range(0, len(lanes), INDEX_READ):
            pipe.zmscore(self.claims_key(watch.queues[0]), lanes[start : start + INDEX_READ])
        scores: list[Any] = [score for chunk in pipe.execute() for score in chunk]
        due: list[str] = []
        later = [now + self.claim_timeout]  # a claim taken from now on is due no sooner
        for lane, score in zip(lanes, scores, strict=True):
            if score is None:
                continue
            if float(score) <= now:
                due.append(watch.owner[lane])
            else:
                later.append(float(score))
        if due:  # looked at now; still holding claims, they come due again after recovery_check
            later.append(now + self.recovery_check)
        watch.next_recovery = min(later)
        return due


