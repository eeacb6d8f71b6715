"""Result backend on Redis, laid out as Celery's Redis backend lays it out.

A result is ``SET <prefix><task id> <json> PX <result_expires>`` followed, in the same
MULTI, by ``PUBLISH <same name> <json>``: Celery's ``AsyncResult.get()`` wakes on taskq's
results and taskq's ``wait_for`` wakes on Celery's. Waiting subscribes to that channel
*before* reading the key again, so a result written in between is never missed, and then
blocks on the subscription: no polling.

On a Redis Cluster each result key lives in its own slot (results spread over the shards,
key names unchanged) and a cluster pipeline cannot PUBLISH: each result is one small script
(SET, then PUBLISH, atomically in the key's slot), the scripts of a batch pipelined.
"""

from __future__ import annotations

import time
from typing import Any

from taskq import states
from taskq.backends.base import ResultBackend, decode_meta
from taskq.brokers.redis.connection import CONNECTION_ERRORS, Plain, RedisConnector
from taskq.config import Settings
from taskq.errors import BackendError, InvalidResult

# One script call per finished header task: HSETNX makes a second report of the same task id
# change nothing, and the count returned is the hash's size after it.
CHORD_ADD = """
redis.call('HSETNX', KEYS[1], ARGV[1], ARGV[2])
if tonumber(ARGV[3]) > 0 then redis.call('PEXPIRE', KEYS[1], ARGV[3]) end
return redis.call('HLEN', KEYS[1])
"""

# KEYS: the result key.  ARGV: the value, its time to live in ms (0: none).
_SET_AND_PUBLISH = """
if ARGV[2] ~= '0' then redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2]) else redis.call('SET', KEYS[1], ARGV[1]) end
return redis.call('PUBLISH', KEYS[1], ARGV[1])
"""


class RedisBackend(ResultBackend):
    supports_chords = True

    def __init__(self, url: str, settings: Settings | None = None, *, global_keyprefix: str | None = None) -> None:
        """``global_keyprefix`` goes before every key and channel, as Celery's option of that
        name in ``result_backend_transport_options`` does (both sides must use the same one)."""
        super().__init__(url, settings or Settings())
        options = getattr(self.settings, "result_backend_transport_options", None) or {}
        self.global_keyprefix = options.get("global_keyprefix", "") if global_keyprefix is None else global_keyprefix
        self._conn = RedisConnector(url)

    def _key(self, key: str) -> str:
        return self.global_keyprefix + key

    def _get(self, key: str) -> bytes | None:
        with self._conn.errors(BackendError, "redis result backend get"):
            value: bytes | None = self._conn.client.get(self._key(key))  # type: ignore[assignment]
        return value

    def _set(self, key: str, value: bytes, ttl: float) -> None:
        self._set_many([(key, value)], ttl)

    def _set_many(self, items: list[tuple[str, bytes]], ttl: float) -> None:
        """Results in one round trip: one MULTI of SET-with-expiry + PUBLISH each, as Celery writes."""
        if self._conn.clustered:
            self._set_many_clustered(items, ttl)
            return
        expiry = ("PX", str(max(int(ttl * 1000), 1))) if ttl > 0 else ()  # 0/None: kept forever, as Celery does
        commands: list[Plain] = []
        for key, value in items:
            name = self._key(key)
            commands += (Plain(("SET", name, value, *expiry)), Plain(("PUBLISH", name, value)))
        self._conn.transaction(BackendError, "redis result backend set", commands)

    def _set_many_clustered(self, items: list[tuple[str, bytes]], ttl: float) -> None:
        ttl_ms = max(int(ttl * 1000), 1) if ttl > 0 else 0
        with self._conn.errors(BackendError, "redis result backend set"):
            pipe = self._conn.client.pipeline(transaction=False)
            for key, value in items:
                pipe.execute_command("EVAL", _SET_AND_PUBLISH, 1, self._key(key), value, ttl_ms)  # type: ignore[no-untyped-call]
            pipe.execute()

    def _delete(self, key: str) -> None:
        with self._conn.errors(BackendError, "redis result backend delete"):
            self._conn.client.delete(self._key(key))

    def _incr(self, key: str, ttl: float) -> int:
        name = self._key(key)
        with self._conn.errors(BackendError, "redis result backend incr"):
            pipe = self._conn.client.pipeline(transaction=True)
            pipe.incr(name)
            if ttl > 0:
                pipe.pexpire(name, max(int(ttl * 1000), 1))
            return int(pipe.execute()[0])

    def _chord_add(self, key: str, member: str, value: bytes, ttl: float) -> int:
        ttl_ms = max(int(ttl * 1000), 1) if ttl > 0 else 0
        with self._conn.errors(BackendError, "redis result backend chord count"):
            script = self._conn.client.register_script(CHORD_ADD)
            return int(script(keys=[self._key(key)], args=[member, value, ttl_ms]))

    def _chord_members(self, key: str) -> list[bytes]:
        with self._conn.errors(BackendError, "redis result backend chord read"):
            return list(self._conn.client.hvals(self._key(key)))  # type: ignore[arg-type]

    def _wait(self, key: str, timeout: float) -> None:
        """Return when a value is published on the key's channel, or after ``timeout``."""
        name = self._key(key)
        deadline = time.monotonic() + timeout
        with self._conn.errors(BackendError, "redis result backend wait"):
            pubsub = self._conn.blocking.pubsub()  # type: ignore[no-untyped-call]
            try:
                self._wait_on(pubsub, name, deadline)
            except CONNECTION_ERRORS:
                # Redis went away: pause, then let the caller read again; reads retry with
                # backoff and raise BackendError only if Redis stays away.
                time.sleep(max(0.0, min(0.5, deadline - time.monotonic())))
            finally:
                pubsub.close()

    def _wait_on(self, pubsub: Any, name: str, deadline: float) -> None:
        pubsub.subscribe(name)
        subscribed = False
        while (remaining := deadline - time.monotonic()) > 0:
            # Blocks on the socket (bounded so the socket timeout never fires first).
            message = pubsub.get_message(timeout=min(remaining, 5.0))
            kind = None if message is None else message.get("type")
            if kind == "message":
                return
            if kind == "subscribe" and not subscribed:
                # The server confirmed the subscription; only now read the key again: a
                # result stored before is seen here, one stored after arrives as a message.
                subscribed = True
                if _is_ready(self._conn.client.get(name)):  # type: ignore[arg-type]
                    return

    def close(self) -> None:
        self._conn.close()


def _is_ready(raw: bytes | None) -> bool:
    if raw is None:
        return False
    try:
        return decode_meta("", raw)["status"] in states.READY_STATES
    except InvalidResult:
        return True  # unreadable: let the caller read it and report
