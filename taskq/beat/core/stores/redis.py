"""Schedule store on Redis, for beats on several hosts.

Keys (prefix ``taskq:beat:`` unless the URL says ``?prefix=...``): hashes ``entries``
(definitions), ``state`` and ``next`` (next run per entry, compared on claim), counter
``revision``, lock string ``lock`` (SET NX PX; renewed by a compare-and-extend script that
checks the owner every time), claim strings ``claim:<entry>:<instant>``, and the pub/sub
channel ``changes`` that wakes sleeping beats at once. On a Redis Cluster the prefix is a
hash tag (``{taskq:beat}:``), so every key of one schedule is in one slot and the scripts
below, which touch several of them, run there.

Claim: a Lua script checks the lock owner, sets the claim key and advances the state in
one step. With a broker that offers ``add_to_pipeline(pipe, publications)`` on the same
server, claim and enqueue run in one MULTI/EXEC guarded by WATCH instead; otherwise the
caller publishes right after the claim (``enqueues_atomically`` False).
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import redis

from taskq.beat.core.entry import Entry, EntryState
from taskq.beat.core.stores.base import CLAIM_RETENTION, ClaimResult, StoreError
from taskq.brokers.redis.connection import make_client
from taskq.brokers.redis.urls import CLUSTER, SCHEMES
from taskq.config import url_scheme
from taskq.display import redact

DEFAULT_PREFIX = "taskq:beat:"
SENT, UNSENT = "sent", "unsent"  # claim key values
WAIT_SLICE = 0.25  # longest single pub/sub read, so stop() is honoured promptly

_WRITE = """
-- KEYS: entries, state, next, revision ; ARGV: mode, id, definition, state, next, channel
local exists = redis.call('HEXISTS', KEYS[1], ARGV[2]) == 1
local mode = ARGV[1]
if mode == 'add' and exists then return 0 end
if mode ~= 'add' and mode ~= 'replace' and not exists then return 0 end
if mode == 'remove' then
  redis.call('HDEL', KEYS[1], ARGV[2]); redis.call('HDEL', KEYS[2], ARGV[2]); redis.call('HDEL', KEYS[3], ARGV[2])
else
  if mode ~= 'state' then redis.call('HSET', KEYS[1], ARGV[2], ARGV[3]) end
  if mode ~= 'definition' then
    redis.call('HSET', KEYS[2], ARGV[2], ARGV[4])
    redis.call('HSET', KEYS[3], ARGV[2], ARGV[5])
  end
end
local revision = redis.call('INCR', KEYS[4])
redis.call('PUBLISH', ARGV[6], revision)
return 1
"""

_CLAIM = """
-- KEYS: lock, claim, entries, state, next ; ARGV: owner, id, expected_next, state, next, claim_ttl, mark
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 'not_leader' end
if redis.call('EXISTS', KEYS[2]) == 1 then return 'taken' end
if redis.call('HEXISTS', KEYS[3], ARGV[2]) == 0 then return 'stale' end
local current = redis.call('HGET', KEYS[5], ARGV[2]) or ''
if current ~= ARGV[3] then return 'stale' end
redis.call('SET', KEYS[2], ARGV[7], 'EX', ARGV[6])
redis.call('HSET', KEYS[4], ARGV[2], ARGV[4])
redis.call('HSET', KEYS[5], ARGV[2], ARGV[5])
return 'claimed'
"""

_READ_FOR_CLAIM = """
return {redis.call('GET', KEYS[1]), redis.call('EXISTS', KEYS[2]),
        redis.call('HGET', KEYS[3], ARGV[1]), redis.call('HEXISTS', KEYS[4], ARGV[1])}
"""

_EXTEND = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
return 0
"""

_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""


def split_prefix(url: str) -> tuple[str, str]:
    """Take our own ``prefix`` parameter off a redis URL: (url for redis-py, key prefix)."""
    parts = urlsplit(url)
    query = parse_qsl(parts.query)
    prefix = next((v for k, v in query if k == "prefix"), DEFAULT_PREFIX)
    rest = urlencode([(k, v) for k, v in query if k != "prefix"])
    return urlunsplit((parts.scheme, parts.netloc, parts.path, rest, parts.fragment)), prefix


def _next(moment: datetime | None) -> str:
    return repr(moment.timestamp()) if moment is not None else ""


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def _dump(value: object) -> str:
    return json.dumps(value, separators=(",", ":"), sort_keys=True)


class RedisScheduleStore:
    notifies = True

    def __init__(self, url: str, broker: Any = None) -> None:
        self.url = url
        redis_url, self.prefix = split_prefix(url)
        scheme = url_scheme(redis_url)
        if scheme == CLUSTER and "{" not in self.prefix:
            self.prefix = "{" + self.prefix.rstrip(":") + "}:"
        if scheme in SCHEMES:
            self.client = make_client(redis_url)
        else:
            self.client = redis.Redis.from_url(redis_url, socket_timeout=10.0, socket_connect_timeout=5.0)
        self._pipeline_publisher: Callable[[Any, Sequence[Any]], None] | None = None
        add_to_pipeline = getattr(broker, "add_to_pipeline", None)
        if add_to_pipeline is not None and _same_server(redis_url, getattr(broker, "url", "")):
            self._pipeline_publisher = add_to_pipeline
        self.enqueues_atomically = self._pipeline_publisher is not None
        self._scripts: dict[str, Any] = {}
        self._local = threading.local()

    def key(self, name: str) -> str:
        return self.prefix + name

    @property
    def channel(self) -> str:
        return self.key("changes")

    @contextmanager
    def _errors(self) -> Iterator[None]:
        try:
            yield
        except redis.RedisError as exc:
            raise StoreError(f"redis schedule store {redact(self.url)}: {type(exc).__name__}: {exc}") from None

    def _run(self, source: str, keys: Sequence[str], args: Sequence[Any]) -> Any:
        if source not in self._scripts:
            self._scripts[source] = self.client.register_script(source)
        with self._errors():
            return self._scripts[source](keys=list(keys), args=list(args))

    def _write(self, mode: str, entry_id: str, definition: str = "", state: str = "", nxt: str = "") -> bool:
        keys = [self.key("entries"), self.key("state"), self.key("next"), self.key("revision")]
        return bool(self._run(_WRITE, keys, [mode, entry_id, definition, state, nxt, self.channel]))

    # -- entries ---------------------------------------------------------------------------
    def add(self, entry: Entry, replace: bool = False) -> bool:
        return self._write(
            "replace" if replace else "add",
            entry.id,
            _dump(entry.definition_dict()),
            _dump(entry.state.to_dict()),
            _next(entry.next_run_time),
        )

    def set_definition(self, entry: Entry) -> bool:
        return self._write("definition", entry.id, _dump(entry.definition_dict()))

    def set_state(self, entry_id: str, state: EntryState) -> bool:
        return self._write("state", entry_id, "", _dump(state.to_dict()), _next(state.next_run_time))

    def remove(self, entry_id: str) -> bool:
        return self._write("remove", entry_id)

    def get(self, entry_id: str) -> Entry | None:
        with self._errors():
            pipe = self.client.pipeline(transaction=True)
            pipe.hget(self.key("entries"), entry_id)
            pipe.hget(self.key("state"), entry_id)
            definition, state = pipe.execute()
        if definition is None:
            return None
        return Entry.from_dicts(json.loads(definition), json.loads(state) if state else None)

    def entries(self) -> list[Entry]:
        with self._errors():
            pipe = self.client.pipeline(transaction=True)
            pipe.hgetall(self.key("entries"))
            pipe.hgetall(self.key("state"))
            definitions, states = pipe.execute()
        out = []
        for entry_id in sorted(definitions):
            state = states.get(entry_id)
            out.append(Entry.from_dicts(json.loads(definitions[entry_id]), json.loads(state) if state else None))
        return out

    def revision(self) -> int:
        with self._errors():
            return int(self.client.get(self.key("revision")) or 0)

    def wait_for_change(self, timeout: float, stop: threading.Event, known: int | None = None) -> bool:
        try:
            return self._wait_for_change(timeout, stop, known)
        except StoreError:
            self._drop_pubsub()  # resubscribe on a fresh connection next time
            raise

    def _drop_pubsub(self) -> None:
        pubsub = getattr(self._local, "pubsub", None)
        self._local.pubsub = None
        if pubsub is not None:
            try:
                pubsub.close()
            except redis.RedisError:
                pass

    def _wait_for_change(self, timeout: float, stop: threading.Event, known: int | None) -> bool:
        deadline = time.monotonic() + max(timeout, 0.0)
        with self._errors():
            pubsub = self._pubsub()  # subscribed before the revision is read: no change slips between
            if known is not None and self.revision() != known:
                return True
            while True:
                remaining = deadline - time.monotonic()
                if stop.is_set():
                    return True
                if remaining <= 0:
                    return False
                message = pubsub.get_message(ignore_subscribe_messages=True, timeout=min(remaining, WAIT_SLICE))
                if message is not None and message.get("type") == "message":
                    while pubsub.get_message(ignore_subscribe_messages=True, timeout=0):
                        pass  # drain a burst of changes: one reload covers them
                    return True

    def _pubsub(self) -> Any:
        pubsub = getattr(self._local, "pubsub", None)
        if pubsub is None:
            pubsub = self.client.pubsub()  # type: ignore[no-untyped-call]
            pubsub.subscribe(self.channel)
            self._local.pubsub = pubsub
        return pubsub

    # -- leadership ------------------------------------------------------------------------
    def acquire_lock(self, owner: str, ttl: float) -> bool:
        ttl_ms = max(int(ttl * 1000), 1)
        with self._errors():
            if self.client.set(self.key("lock"), owner, nx=True, px=ttl_ms):
                return True
        return bool(self._run(_EXTEND, [self.key("lock")], [owner, ttl_ms]))

    def release_lock(self, owner: str) -> None:
        self._run(_RELEASE, [self.key("lock")], [owner])

    def lock_owner(self) -> str | None:
        with self._errors():
            value = self.client.get(self.key("lock"))
        return _text(value) if value is not None else None

    def lock_remaining(self) -> float | None:
        with self._errors():
            milliseconds = int(self.client.pttl(self.key("lock")))
        return milliseconds / 1000 if milliseconds > 0 else None

    # -- the claim -------------------------------------------------------------------------
    def claim_key(self, entry_id: str, instant: datetime) -> str:
        return self.key(f"claim:{entry_id}:{instant.timestamp()!r}")

    def claim(
        self,
        owner: str,
        entry_id: str,
        instant: datetime,
        expected_next: datetime | None,
        state: EntryState,
        publications: Sequence[Any],
        will_publish: bool = False,
    ) -> ClaimResult:
        if publications and self._pipeline_publisher is not None:
            return self._claim_and_enqueue(owner, entry_id, instant, expected_next, state, publications)
        if publications:
            raise StoreError("this schedule store cannot enqueue: the broker is elsewhere")
        keys = [
            self.key("lock"),
            self.claim_key(entry_id, instant),
            self.key("entries"),
            self.key("state"),
            self.key("next"),
        ]
        args = [owner, entry_id, _next(expected_next), _dump(state.to_dict()), _next(state.next_run_time)]
        mark = UNSENT if will_publish else SENT
        result = self._run(_CLAIM, keys, [*args, int(CLAIM_RETENTION), mark])
        return ClaimResult(result.decode() if isinstance(result, bytes) else result)

    def _claim_and_enqueue(
        self,
        owner: str,
        entry_id: str,
        instant: datetime,
        expected_next: datetime | None,
        state: EntryState,
        publications: Sequence[Any],
    ) -> ClaimResult:
        """WATCH the lock, the claim and the entry's next run; MULTI; claim, state and the
        broker's own publish commands; EXEC. Any concurrent change aborts the whole step."""
        assert self._pipeline_publisher is not None
        lock, claim_key = self.key("lock"), self.claim_key(entry_id, instant)
        with self._errors(), self.client.pipeline(transaction=True) as pipe:
            try:
                pipe.watch(lock, claim_key, self.key("next"), self.key("entries"))  # type: ignore[no-untyped-call]
                # One round trip for the four reads the decision needs (still under WATCH).
                holder, taken, current, exists = pipe.eval(
                    _READ_FOR_CLAIM, 4, lock, claim_key, self.key("next"), self.key("entries"), entry_id
                )
                if holder != owner.encode():
                    return ClaimResult.NOT_LEADER
                if taken:
                    return ClaimResult.TAKEN
                if not exists or _text(current or b"") != _next(expected_next):
                    return ClaimResult.STALE
                pipe.multi()
                pipe.set(claim_key, SENT, ex=int(CLAIM_RETENTION))
                pipe.hset(self.key("state"), entry_id, _dump(state.to_dict()))
                pipe.hset(self.key("next"), entry_id, _next(state.next_run_time))
                self._pipeline_publisher(pipe, publications)
                pipe.execute()
                return ClaimResult.CLAIMED
            except redis.WatchError:
                return ClaimResult.STALE  # the caller reloads and claims again: TAKEN if someone won

    def mark_sent(self, entry_id: str, instant: datetime) -> None:
        with self._errors():
            self.client.set(self.claim_key(entry_id, instant), SENT, xx=True, keepttl=True)

    def unsent_claim(self, entry_id: str, instant: datetime) -> bool:
        with self._errors():
            return self.client.get(self.claim_key(entry_id, instant)) == UNSENT.encode()

    def close(self) -> None:
        self._drop_pubsub()
        self.client.close()


def _same_server(a: str, b: str) -> bool:
    """Same Redis host, port and database (a claim and an enqueue in one MULTI need that)."""
    if not b.startswith(("redis://", "rediss://")):
        return False
    pa, pb = urlsplit(a), urlsplit(split_prefix(b)[0])
    db_a, db_b = (pa.path.strip("/") or "0"), (pb.path.strip("/") or "0")
    return (pa.hostname, pa.port or 6379, db_a) == (pb.hostname, pb.port or 6379, db_b)
