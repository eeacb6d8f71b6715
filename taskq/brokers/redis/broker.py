"""The Redis broker: Redis Streams with one consumer group per (queue, priority lane).

* publish: XADD to the lane of the message's priority, on the calling thread's own
  connection; many messages are one script call per chunk of 1,000, one call in flight
  while the next chunk is encoded; a message with a future eta waits in the queue's sorted set.
* fetch: one Lua script moves due delayed messages, takes over claims idle longer than
  the recovery time (a dead worker's) and reads new entries, highest lane first, up to the
  count: one round trip for a batch. With nothing ready it blocks in XREADGROUP BLOCK.
* a claim is the entry's place in the group's pending list; extend refreshes its idle
  time (XCLAIM JUSTID); ack is XACK + XDEL of the entries still owned; requeue re-adds
  atomically (Lua).
* redeliveries are the stream's own delivery counter minus one (``counts_redeliveries``).

docs/redis.md explains the layout and which promises hold and how.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
import uuid
from collections import defaultdict
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import redis

from taskq.brokers.base import Delivery, Publication, undecodable
from taskq.brokers.redis import entry
from taskq.brokers.redis.acks import Acks
from taskq.brokers.redis.admin import RedisAdmin, _s
from taskq.brokers.redis.cluster import PUBLISH_CHUNK, ClusterRouting, _Found
from taskq.brokers.redis.connection import CONNECTION_ERRORS, Parts, Plain, RedisConnector
from taskq.brokers.redis.owned import OwnedClaims
from taskq.brokers.redis.scripts import (
    DEAD_LETTER,
    FETCH,
    GROUP,
    LANES,
    PUBLISH,
)
from taskq.brokers.redis.watch import WINDOW, IdleWatch, watches
from taskq.config import Settings
from taskq.display import redact
from taskq.envelope import Envelope
from taskq.errors import BrokerError

log = logging.getLogger("taskq.brokers.redis")

# A body at least this big is written to the socket as it is (connection.Parts); a smaller
# one is joined to its header, which costs less than a second write.
DIRECT_PARTS = 64 * 1024
REGISTER_EVERY = 60.0  # seconds between re-adding a queue name to the registry (listings only)
WAKE_STREAM_LENGTH = 100  # wake entries are acked at once; the stream only needs the latest
# Longest single blocking read: a fetcher looks at the queues afresh at least this often.
DEFAULT_MAX_BLOCK = 1.0
# Longest wait of an idle fetcher over many queues (watch.py) when a stop can interrupt it.
DEFAULT_IDLE_BLOCK = 10.0
# A consumer name that holds no claims and was idle this long belongs to a dead process.
FORGET_CONSUMER_AFTER = 3600.0
# From this size on, copying an entry through a Lua script costs Redis more than the rest of a
# fetch: such messages are claimed with a plain XREADGROUP (_claim).
BIG_MESSAGE = 32 * 1024
_HOST = socket.gethostname()


def _delivery(raw: bytes, queue: str, tag: tuple[str, str], redeliveries: int) -> Delivery:
    """The Delivery of a stored entry (compact or full); undecodable bytes go to the dead letters."""
    try:
        return Delivery(entry.decode(raw), queue, tag, redeliveries)
    except Exception as exc:  # one bad message must never fail the whole fetch
        return undecodable(raw, queue, tag, redeliveries, exc)


def lane_of(priority: int) -> int:
    return min(max(int(priority), 0), LANES - 1)


class RedisBroker(Acks, OwnedClaims, ClusterRouting, IdleWatch, RedisAdmin):
    counts_redeliveries = True

    def __init__(self, url: str, settings: Settings | None = None) -> None:
        settings = settings or Settings()
        options = settings.broker_transport_options
        self.url = url
        self.prefix: str = options.get("global_keyprefix", "taskq:")
        recovery_time = float(settings.recovery_time)
        # A claim idle for 9/10 of the recovery time is abandoned; fetchers look for such
        # claims every 1/10 of it. So a dead worker's messages run again within the recovery
        # time, while a live worker (which extends every third of it) never loses one.
        self.claim_timeout = 0.9 * recovery_time
        self.recovery_check = max(0.1 * recovery_time, 0.01)
        socket_timeout = float(options.get("socket_timeout", 10.0))
        # A blocking read must end before the socket timeout would call it a dead connection.
        self.max_block = min(float(options.get("max_block", DEFAULT_MAX_BLOCK)), socket_timeout / 2)
        self.idle_block = float(options.get("idle_block", DEFAULT_IDLE_BLOCK))
        self.socket_timeout = socket_timeout
        # Ties between queues at one priority: the order given (default) or taking turns.
        self.fair_queues = bool(options.get("fair_queues", False))
        self._turn = 0
        self._window = 0  # the window of queues the next fetch starts with (_claim_any)
        self.forget_consumer_after = float(options.get("forget_consumer_after", FORGET_CONSUMER_AFTER))
        self._conn = RedisConnector(
            url,
            retries=int(options.get("retries", 16)),
            socket_timeout=socket_timeout,
            connect_timeout=float(options.get("socket_connect_timeout", 5.0)),
        )
        self.clustered = self._conn.clustered
        # Publish returns once this many replicas have the message too (WAIT; docs/scaling.md).
        self.wait_replicas = int(options.get("wait_replicas", 0))
        self.wait_timeout = float(options.get("wait_timeout", 2.0))
        self._token = uuid.uuid4().hex[:8]
        self._registered: dict[str, float] = {}  # queue -> when this process last registered it
        self._swept: set[str] = set()  # queues this process looked at for abandoned claims once
        self._local = threading.local()  # per fetching thread: its idle watch (watch.py)
        self._stopping = False  # interrupt_fetch was called: waits are max_block at most again
        self._reading: set[Any] = set()  # connections in a watch's blocking read (interrupt_fetch)
        self._disconnected = False
        self._scripts: dict[str, Any] = {}
        # Queues whose last fetch had a big message -> the lanes their fetch script named (_claim).
        self._big: dict[tuple[str, ...], list[str]] = {}

    # -- keys and plumbing ------------------------------------------------------------
    def _q(self, queue: str) -> str:
        """The start of every key of a queue. On a cluster the queue name is a hash tag, so
        all of a queue's keys share one slot (each script call stays on one shard) while
        different queues spread over the shards; a single server keeps the untagged names."""
        return f"{self.prefix}q:{{{queue}}}" if self.clustered else f"{self.prefix}q:{queue}"

    def lane_key(self, queue: str, lane: int) -> str:
        return f"{self._q(queue)}:{lane}"

    def delayed_key(self, queue: str) -> str:
        return f"{self._q(queue)}:delayed"

    def lanes_key(self, queue: str) -> str:
        return f"{self._q(queue)}:lanes"

    def wake_key(self, queue: str) -> str:
        return f"{self._q(queue)}:wake"

    def dead_key(self, queue: str) -> str:
        return f"{self._q(queue)}:dead"

    @property
    def registry_key(self) -> str:
        return f"{self.prefix}queues"

    def _registry_for(self, queue: str) -> str:
        """The registry key a script that touches ``queue`` may write. On a cluster the
        registry lives in another slot: scripts write a set of the queue's own instead, and
        publish adds the queue to the registry with a command of its own."""
        return f"{self._q(queue)}:registry" if self.clustered else self.registry_key

    def claims_key(self, queue: str) -> str:
        """The claims index: lane streams that may hold claims, scored by when to look at
        them next (scripts.FETCH). One sorted set on a single server; on a cluster one per
        queue (a script call stays in its queue's slot)."""
        return f"{self._q(queue)}:claims" if self.clustered else f"{self.prefix}claims"

    def queue_of_lane(self, key: str) -> str:
        """The queue of a lane stream's key (``lane_key`` read backwards)."""
        name = key[len(self.prefix) + 2 : key.rfind(":")]
        return name[1:-1] if self.clustered else name

    def cursor_key(self, queue: str) -> str:
        """Where a search for abandoned claims resumes per lane, and each lane's latest
        blocking-read mark (scripts.FETCH step 5)."""
        return f"{self._q(queue)}:cursor"

    def _fetch_keys(self, queue: str) -> list[str]:
        lanes = [self.lane_key(queue, lane) for lane in range(LANES)]
        delayed, wake, cursor = self.delayed_key(queue), self.wake_key(queue), self.cursor_key(queue)
        return [*lanes, delayed, wake, cursor, self.lanes_key(queue), self.dead_key(queue)]

    @property
    def consumer(self) -> str:
        """This process's consumer name in the groups: a new one after a fork (claims belong to
        one process). Computed, not cached, so every thread of a process agrees on it."""
        return f"{_HOST}:{os.getpid()}:{self._token}"

    @property
    def client(self) -> redis.Redis:
        return self._conn.client

    def _script(self, source: str) -> Any:
        """A registered script: EVALSHA, loaded again by redis-py after a server restart.
        Callers pass the client explicitly, so a script object outlives fork and close."""
        if source not in self._scripts:
            self._scripts[source] = self.client.register_script(source)
        return self._scripts[source]

    def _run(self, source: str, keys: Sequence[str], args: Sequence[Any]) -> Any:
        return self._script(source)(keys=list(keys), args=list(args), client=self.client)

    @contextmanager
    def _errors(self, what: str) -> Iterator[None]:
        with self._conn.errors(BrokerError, f"redis broker {what}"):
            yield

    # -- producing --------------------------------------------------------------------
    def publish(self, queue: str, envelope: Envelope, eta: float | None = None) -> None:
        ready = eta is None or eta <= time.time()
        if ready and lane_of(envelope.priority) == 0 and not self.wait_replicas and not self._stale((queue,)):
            # The common case is one command: no pipeline, nothing else to write.
            key, (head, body) = self.lane_key(queue, 0), entry.encode_parts(envelope)
            if len(body) < DIRECT_PARTS:
                command: Sequence[Any] = Plain(("XADD", key, "*", "m", head + body))
            else:  # a big body goes to the socket as it is, never copied into one buffer
                command = Parts(("XADD", key, "*", "m"), (head, body))
            self._conn.direct_many(BrokerError, "redis broker publish", [command])
            return
        self.publish_many([Publication(queue, envelope, eta)])

    def publish_many(self, items: Sequence[Publication]) -> None:
        """One script call per chunk of 1,000, on this thread's own connection with one call
        in flight: the next chunk is taken from ``items`` (encoded there, when send_many
        passes a lazy sequence) while Redis runs the one before."""
        registered: list[str] = []
        if self.clustered or self.wait_replicas:
            self._publish_routed(items, registered)
        else:
            calls = self._publish_calls(items, registered)
            self._conn.direct_many(BrokerError, "redis broker publish", calls)
        self._registered.update(dict.fromkeys(registered, time.monotonic()))

    def _publish_calls(self, items: Sequence[Publication], registered: list[str]) -> Iterator[tuple[Any, ...]]:
        for start in range(0, len(items), PUBLISH_CHUNK):
            chunk = items[start : start + PUBLISH_CHUNK]
            stale = self._stale({item.queue for item in chunk})
            keys, argv = self._publish_script_args(chunk, stale)
            registered += stale
            yield ("EVAL", PUBLISH, len(keys), *keys, *argv)

    def add_to_pipeline(self, pipe: Any, items: Sequence[Publication]) -> None:
        """Queue the call that publishes ``items`` on a caller's redis-py pipeline to the same
        server, so it commits with the caller's own writes (beat's claim + enqueue in one
        MULTI/EXEC)."""
        keys, argv = self._publish_script_args(items, list({item.queue for item in items}))
        pipe.eval(PUBLISH, len(keys), *keys, *argv)

    def _stale(self, queues: Iterable[str]) -> list[str]:
        """Queues this process has not added to the registry lately. The registry only serves
        listings (``taskq queues``), so re-adding once a minute bounds how long a queue can
        be missing there after its key was lost (FLUSHDB), at no cost per message."""
        horizon = time.monotonic() - REGISTER_EVERY
        return [q for q in queues if self._registered.get(q, horizon - 1) < horizon]

    def _publish_script_args(self, items: Sequence[Publication], register: list[str]) -> tuple[list[str], list[Any]]:
        """KEYS and ARGV of the PUBLISH script for ``items`` (scripts.py has the layout):
        ready messages as runs of XADDs per lane (in order), delayed ones as ZADDs plus a wake
        entry per queue, and the registry and lanes-in-use sets."""
        keys: dict[str, int] = {}
        streams: list[tuple[int, list[bytes]]] = []  # runs of ready messages, in order
        delayed: dict[str, list[Any]] = defaultdict(list)  # queue -> score, member, ...
        lanes_used: dict[str, set[int]] = defaultdict(set)
        lane_keys: dict[tuple[str, int], int] = {}
        now = time.time()
        for item in items:
            lane = lane_of(item.envelope.priority)
            lanes_used[item.queue].add(lane)
            raw = entry.encode(item.envelope)
            if item.eta is not None and item.eta > now:
                delayed[item.queue] += [item.eta, f"{lane}{uuid.uuid4().hex[:16]}".encode() + raw]
                continue
            key = lane_keys.get((item.queue, lane))
            if key is None:
                key = lane_keys[item.queue, lane] = keys.setdefault(self.lane_key(item.queue, lane), len(keys) + 1)
            if not streams or streams[-1][0] != key:
                streams.append((key, []))
            streams[-1][1].append(raw)
        argv: list[Any] = []
        for key, raws in streams:
            argv += ["X", key, len(raws), *raws]
        for queue, pairs in delayed.items():
            argv += ["Z", keys.setdefault(self.delayed_key(queue), len(keys) + 1), len(pairs) // 2, *pairs]
            # Wakes one blocked fetcher, which then waits for this eta rather than an older one.
            argv += ["W", keys.setdefault(self.wake_key(queue), len(keys) + 1), WAKE_STREAM_LENGTH]
        if register:
            argv += ["S", keys.setdefault(self.registry_key, len(keys) + 1), len(register), *register]
        for queue, lanes in lanes_used.items():
            if lanes != {0}:  # lane 0 is always read; the others must be known on every publish
                others = sorted(lanes)
                lanes_at = keys.setdefault(self.lanes_key(queue), len(keys) + 1)
                argv += ["L", lanes_at, len(others), *others, keys.setdefault(self.wake_key(queue), len(keys) + 1)]
        return list(keys), argv

    # -- consuming --------------------------------------------------------------------
    def fetch(self, queues: Sequence[str], max_count: int, timeout: float) -> list[Delivery]:
        return self._fetch(queues, max_count, timeout, [])

    def _fetch(self, queues: Sequence[str], max_count: int, timeout: float, acks: list[Delivery]) -> list[Delivery]:
        """``fetch``, sending ``acks`` first (acks.py: each one sent is taken off the list)."""
        deadline = time.monotonic() + max(timeout, 0.0)
        queues = list(dict.fromkeys(queues))
        if acks and (not queues or max_count <= 0 or self.clustered or len(queues) > WINDOW):
            self.ack(acks)  # the fetch runs no single script call to carry them
            acks.clear()
        if not queues or max_count <= 0:
            return []
        if self.fair_queues:  # equal priorities: each queue goes first in turn
            self._turn = (self._turn + 1) % len(queues)
            queues = queues[self._turn :] + queues[: self._turn]
        backoff = 0.05
        watching = watches(queues, self.clustered)
        while True:
            try:
                if watching:  # idle queues cost one blocking read, not a scan (watch.py)
                    taken = self._watch_fetch(queues, max_count, deadline)
                    self._connected_again()
                    if taken or time.monotonic() >= deadline or self._stopping:
                        return taken
                    continue
                taken, found = self._claim_any(queues, max_count, acks)
                if taken or time.monotonic() >= deadline:
                    self._connected_again()
                    return taken
                # What the blocking read claimed goes to work at once; messages that arrive
                # after it woke are the next fetch's (a top-up round trip here delayed every
                # idle worker's first task by that round trip).
                taken = self._block(queues, max_count, deadline, found)
                self._connected_again()
                if taken:
                    return taken
            except CONNECTION_ERRORS as exc:
                self._drop_watch()  # Redis may come back without what the watch knew
                # Redis went away: keep the fetch loop alive, retry with backoff until it returns.
                if not self._disconnected:
                    log.warning("redis broker %s unreachable (%s); reconnecting with backoff", redact(self.url), exc)
                    self._disconnected = True
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return []
                time.sleep(min(backoff, remaining))
                backoff = min(backoff * 2, 2.0)
            except redis.RedisError as exc:
                self._drop_watch()
                raise BrokerError(f"redis broker fetch: {type(exc).__name__}: {exc}") from None
            if time.monotonic() >= deadline:
                return []

    def _connected_again(self) -> None:
        self._conn.reached = True
        if self._disconnected:
            self._disconnected = False
            log.warning("redis broker %s reachable again", redact(self.url))

    def _claim_any(
        self, queues: list[str], max_count: int, acks: list[Delivery] | None = None
    ) -> tuple[list[Delivery], _Found]:
        """Claim up to ``max_count`` from ``queues``. Beyond WINDOW queues, the fetch script
        runs over WINDOW of them at a time, taking turns from where the last fetch stopped,
        until one window has messages or every window was seen: a fetch then costs Redis what
        WINDOW queues cost, not what all of them do, and every queue gets its turn (a
        thousand tenant queues with a few tasks each drain fairly). Priorities are ordered
        within a window. When every window was empty, the result holds where each stream
        ends (watch.py waits from there)."""
        if self.clustered:
            return self._claim_each(queues, max_count)
        if len(queues) <= WINDOW:
            return self._claim(queues, max_count, mark=True, acks=acks)
        windows = -(-len(queues) // WINDOW)
        whole = _Found(None, [], {}, {}, {})
        for _ in range(windows):
            start = self._window % windows * WINDOW
            self._window = (self._window + 1) % windows
            taken, found = self._claim(queues[start : start + WINDOW], max_count, tails=True)
            if taken:
                return taken, found
            if found.next_due is not None and (whole.next_due is None or found.next_due < whole.next_due):
                whole.next_due = found.next_due
            whole.lanes += found.lanes
            whole.dues.update(found.dues)
            assert whole.tails is not None and found.tails is not None  # nothing taken: tails come back
            whole.tails.update(found.tails)
            whole.owners.update(found.owners)
        return [], whole

    def _claim(
        self,
        queues: list[str],
        max_count: int,
        mark: bool = False,
        tails: bool = False,
        acks: list[Delivery] | None = None,
    ) -> tuple[list[Delivery], _Found]:
        """One fetch script call over ``queues``. ``mark``: if it takes nothing, the caller
        claims in a blocking read next (index the queues first); ``tails``: if it takes
        nothing, report where each stream ends (the caller only watches). ``acks`` go in the
        same round trip, before it (acks.py)."""
        # Big messages: the script does its housekeeping and marks the lanes in the claims
        # index (as before a blocking read), and a plain XREADGROUP after it in the same
        # pipeline claims, over the lanes its previous answer named (docs/redis.md). Not on a
        # cluster: its pipelines route and retry commands apart.
        big = self._big.get(tuple(queues)) if mark and max_count > 0 and not self.clustered else None
        keys = [*(key for queue in queues for key in self._fetch_keys(queue))]
        keys += [self._registry_for(queues[0]), self.claims_key(queues[0])]
        args: list[Any] = [
            GROUP,
            self.consumer,
            max_count,
            repr(time.time()),
            int(self.claim_timeout * 1000),
            repr(self.recovery_check),
            int(self.forget_consumer_after * 1000),
            "t" if tails else "h" if big else "m" if mark else "",
        ]
        # A process's first look at a queue sweeps it for abandoned claims whatever the index
        # says (claims of a taskq version before the index, or of a lost index).
        args += ["0" if q in self._swept else "1" for q in queues]
        args += queues
        script = self._script(FETCH)
        # The fetch script must not be retried blindly: a retry after a lost reply would claim
        # other entries while the first ones wait for recovery. The blocking pool never retries.
        read: list[tuple[int, Delivery]] = []
        largest = 0
        if big and acks:
            self.ack(acks)  # the big read keeps its own pipeline: the acks go in their own call first
            acks.clear()
        if big:
            # EVALSHA itself: a script object on a pipeline costs a SCRIPT EXISTS round trip.
            pipe = self._conn.blocking.pipeline(transaction=False)
            pipe.evalsha(script.sha, len(keys), *keys, *args)
            pipe.xreadgroup(GROUP, self.consumer, dict.fromkeys(big, ">"), count=max_count)  # type: ignore[arg-type]
            answer, reply = pipe.execute(raise_on_error=False)
            if isinstance(answer, Exception):
                # The read claimed without the script's mark: those go back while we can.
                if reply and not isinstance(reply, Exception):
                    self.requeue([d for _, d in self._read_entries(queues, reply)[0]])
                if not isinstance(answer, redis.exceptions.NoScriptError):
                    raise answer
                del self._big[tuple(queues)]  # a restarted server: the script call loads it
                return self._claim(queues, max_count, mark, tails)
            entries, dues, masks, ends = answer
            if isinstance(reply, Exception):
                # The streams vanished (FLUSHDB), or a lane key is not a stream (a foreign
                # write, which the script skips): a plain script call reads, unless this one
                # took over claims (they must be returned).
                if "NOGROUP" in str(reply):
                    self._make_groups(big)
                del self._big[tuple(queues)]
                if not entries:
                    return self._claim(queues, max_count, mark, tails)
                big, reply = None, None
            read, _, largest = self._read_entries(queues, reply)
        elif acks:
            entries, dues, masks, ends = self._fetch_carrying(script, keys, args, acks)
        else:
            entries, dues, masks, ends = script(keys=keys, args=args, client=self._conn.blocking)
        if max_count > 0:
            self._swept.update(queues)
        taken: list[tuple[int, Delivery]] = []
        where_of: dict[tuple[int, int], tuple[str, str]] = {}  # (queue index, lane) -> queue, stream key
        for qi, lane, eid, raw, redeliveries in entries:
            where = where_of.get((qi, lane))
            if where is None:  # once per lane in the batch, not once per message
                queue = queues[int(qi) - 1]
                where = where_of[qi, lane] = (queue, self.lane_key(queue, int(lane)))
            taken.append((int(lane), _delivery(raw, where[0], (where[1], _s(eid)), int(redeliveries))))
            if len(raw) > largest:
                largest = len(raw)
        lanes = [
            self.lane_key(queue, lane)
            for lane in reversed(range(LANES))
            for queue, mask in zip(queues, masks, strict=True)
            if int(mask) >> lane & 1
        ]
        etas = {queue: float(due) for queue, due in zip(queues, dues, strict=True) if due}
        found = _Found(min(etas.values(), default=None), lanes, etas)
        if ends:
            found.tails, found.owners = {}, {}
            for queue, mask, ids in zip(queues, masks, ends, strict=True):
                streams = [self.wake_key(queue), *(self.lane_key(queue, n) for n in range(LANES) if int(mask) >> n & 1)]
                for stream, eid in zip(streams, ids, strict=True):
                    found.tails[stream], found.owners[stream] = _s(eid), queue
        if mark and (taken or read) and not self.clustered:
            if largest >= BIG_MESSAGE:
                self._big[tuple(queues)] = lanes
            else:
                self._big.pop(tuple(queues), None)
        elif big:
            self._big[tuple(queues)] = lanes  # lanes new since: read from the next fetch on
        return self._at_most(taken + read, max_count), found

    def _block(self, queues: list[str], max_count: int, deadline: float, found: _Found) -> list[Delivery]:
        """Wait in XREADGROUP BLOCK until a message arrives, a delayed one is due (or newly
        published: its wake entry), or it is time to look for abandoned claims again; returns
        what the blocking read claimed."""
        wait = min(deadline - time.monotonic(), self.max_block, self.recovery_check)
        if found.next_due is not None:
            wait = min(wait, found.next_due - time.time())
        if wait <= 0.001:
            return []
        if self.clustered and len(queues) > 1:
            return self._block_each(queues, max_count, min(deadline, time.monotonic() + wait), found)
        wakes = [self.wake_key(q) for q in queues]
        streams = dict.fromkeys([*found.lanes, *wakes], ">")
        try:
            reply: Any = self._conn.blocking.xreadgroup(
                GROUP, self.consumer, streams, count=max_count, block=max(int(wait * 1000), 1)  # type: ignore[arg-type]
            )
        except redis.ResponseError as exc:
            if "NOGROUP" not in str(exc):
                raise
            self._make_groups([*found.lanes, *wakes])  # new queue, or the streams vanished (FLUSHDB)
            return []
        if not reply:
            return []
        taken, woken, _ = self._read_entries(queues, reply)
        if woken:
            pipe = self._conn.blocking.pipeline(transaction=False)
            for name, ids in woken.items():
                pipe.xack(name, GROUP, *ids)
            try:
                pipe.execute()
            except redis.RedisError:
                pass  # an unacked wake entry costs a few bytes until the stream is trimmed
        return self._at_most(taken, max_count)

    def _at_most(self, taken: list[tuple[int, Delivery]], max_count: int) -> list[Delivery]:
        """Highest lane first (stable); a plain read over several lanes may answer more than
        ``max_count``: the surplus goes back."""
        if len(taken) == 1:  # a blocking read's usual answer: nothing to order or give back
            return [taken[0][1]]
        taken.sort(key=lambda item: -item[0])
        deliveries = [d for _, d in taken]
        if len(deliveries) > max_count:
            self.requeue(deliveries[max_count:])
            deliveries = deliveries[:max_count]
        return deliveries

    def _read_entries(
        self, queues: Sequence[str], reply: Any
    ) -> tuple[list[tuple[int, Delivery]], dict[str, list[str]], int]:
        """A plain XREADGROUP reply as (lane, delivery) pairs, the ids read per wake stream, and
        the size of the largest message.
        A first delivery: its redeliveries are the entry's 'r' field (what the fetch script
        counts, with the stream's delivery counter at 1)."""
        taken: list[tuple[int, Delivery]] = []
        woken: dict[str, list[str]] = defaultdict(list)
        largest = 0
        for stream, entries in reply or []:
            name = _s(stream)
            lane_of = self._lane_of(name, queues)
            if lane_of is None:
                woken[name].extend(_s(eid) for eid, _ in entries)
                continue
            queue, lane = lane_of
            for eid, fields in entries:
                earlier, raw = int(fields.get(b"r", 0)), fields.get(b"m", b"")
                taken.append((lane, _delivery(raw, queue, (name, _s(eid)), earlier)))
                largest = max(largest, len(raw))
        return taken, woken, largest

    def _lane_of(self, name: str, queues: Sequence[str]) -> tuple[str, int] | None:
        """(queue, lane) when ``name`` is a lane stream of one of ``queues``, else None (a wake
        stream). Read from the name itself (about 1 µs): a map of every lane of every queue,
        built for each reply of a blocking read, cost 3 µs for one queue and 75 µs for 32 on
        the way from the read to the task (docs/performance.md)."""
        lane = name[name.rfind(":") + 1 :]
        if not lane.isdecimal() or int(lane) >= LANES:
            return None
        queue = self.queue_of_lane(name)
        if queue not in queues or self.lane_key(queue, int(lane)) != name:  # e.g. another prefix
            return None
        return queue, int(lane)

    def _make_groups(self, streams: Sequence[str]) -> None:
        pipe = self._conn.blocking.pipeline(transaction=False)
        for stream in streams:
            pipe.xgroup_create(stream, GROUP, id="0", mkstream=True)
        pipe.execute(raise_on_error=False)  # BUSYGROUP: it exists already

    def dead_letter(self, delivery: Delivery, reason: str) -> None:
        stream, eid = delivery.tag
        message_id = (delivery.envelope.id if delivery.envelope else "") or f"undecodable-{eid}"
        lane = int(stream.rsplit(":", 1)[1])
        with self._errors("dead_letter"):
            keys = [stream, self.dead_key(delivery.queue), self._registry_for(delivery.queue)]
            self._run(
                DEAD_LETTER,
                keys,
                [GROUP, eid, message_id, reason, repr(time.time()), lane, delivery.queue, self.consumer],
            )

    @property
    def connector(self) -> RedisConnector:
        """This broker's clients, for another store on the same server (revocations)."""
        return self._conn

    def close(self) -> None:
        self._conn.close()
