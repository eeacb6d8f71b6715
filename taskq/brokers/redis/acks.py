"""Acknowledging on Redis (a mixin of RedisBroker): the ACK script, alone or carried in the
round trip of the next fetch.

An ACK call removes the entries named that this consumer still owns (XACK, XDEL): a claim
taken over by another consumer while this one stalled is left to its new owner. So an ack
sent twice, or again after the first one applied, touches no other entry.

A draining worker acks a finished batch and fetches the next one. ``fetch_acking`` sends
both in one request, the ACK call(s) first, then the fetch script, on the fetch's
connection: one round trip a batch instead of two (a round trip costs the server about
14 us of CPU beside its commands, and the worker a send and a receive). Each delivery whose
ACK call answered is taken off the list the caller passed; what is left when it returns or
raises (the connection lost mid-way, a server that lost its scripts, an error reply) was
not acked, or is not known to be, and the caller sends it again. Where a fetch does not
start with one script call on one connection (a cluster, more queues than one window, the
big-message read), the acks go first in their own call, as before.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from contextlib import AbstractContextManager
from typing import Any, Protocol

from redis.exceptions import NoScriptError

from taskq.brokers.base import Delivery
from taskq.brokers.redis.connection import RedisConnector
from taskq.brokers.redis.scripts import ACK, GROUP


class _Broker(Protocol):
    """What these methods use of RedisBroker."""

    _conn: RedisConnector

    @property
    def consumer(self) -> str: ...
    def claims_key(self, queue: str) -> str: ...
    def cursor_key(self, queue: str) -> str: ...
    def _errors(self, what: str) -> AbstractContextManager[None]: ...
    def _per_slot(self, deliveries: Sequence[Delivery]) -> list[Sequence[Delivery]]: ...
    def _run(self, source: str, keys: Sequence[str], args: Sequence[Any]) -> Any: ...
    def _script(self, source: str) -> Any: ...
    def _ack_args(self, deliveries: Sequence[Delivery]) -> tuple[list[str], list[Any]]: ...
    def _fetch(self, queues: Sequence[str], max_count: int, timeout: float, acks: list[Delivery]) -> list[Delivery]: ...


def _entry_order(entry_id: str) -> tuple[int, int]:
    """A stream entry id ``<ms>-<seq>`` as numbers (ids do not sort as strings)."""
    ms, _, seq = entry_id.partition("-")
    return int(ms), int(seq or 0)


def _id_range(ids: Sequence[str]) -> tuple[str, str]:
    """The lowest and the highest of stream entry ids. A batch's ids mostly come in stream
    order: one comparison per id then, each id parsed only when the order breaks."""
    low = high = ids[0]
    low_key: tuple[int, int] = _entry_order(low)
    high_key: tuple[int, int] | None = low_key
    size, dash = len(high), high.find("-")
    for eid in ids[1:]:
        # Both parts of the same lengths: the text orders as the numbers do.
        if len(eid) == size and eid > high and eid.find("-") == dash:
            high, high_key = eid, None
            continue
        if high_key is None:
            high_key = _entry_order(high)
        key = _entry_order(eid)
        if key > high_key:
            high, high_key, size, dash = eid, key, len(eid), eid.find("-")
        elif key < low_key:
            low, low_key = eid, key
    return low, high


class Acks:
    def ack(self: _Broker, deliveries: Sequence[Delivery]) -> None:
        """Remove the messages this consumer still owns (one script call): a claim taken over
        by another consumer while this one stalled is left to its new owner."""
        if not deliveries:
            return
        with self._errors("ack"):
            for group in self._per_slot(deliveries):
                self._run(ACK, *self._ack_args(group))

    def add_acks_to_pipeline(self: _Broker, pipe: Any, deliveries: Sequence[Delivery]) -> None:
        """Queue the acks of ``deliveries`` on a caller's pipeline to the same server (a worker
        can then write a batch's results and ack its messages in one round trip)."""
        for group in self._per_slot(deliveries):
            keys, args = self._ack_args(group)
            pipe.execute_command("EVAL", ACK, len(keys), *keys, *args)  # a pipeline cannot load a script first

    def _ack_args(self: _Broker, deliveries: Sequence[Delivery]) -> tuple[list[str], list[Any]]:
        by_stream: dict[str, list[str]] = {}
        cursors: list[str] = []  # per stream, in by_stream's order: each computed once, not per message
        for d in deliveries:
            stream, eid = d.tag
            ids = by_stream.get(stream)
            if ids is None:
                ids = by_stream[stream] = []
                cursors.append(self.cursor_key(d.queue))
            ids.append(eid)
        args: list[Any] = [GROUP, self.consumer, repr(time.time())]
        for ids in by_stream.values():
            low, high = _id_range(ids)
            args += [len(ids), low, high, *ids]
        return [*by_stream, *cursors, self.claims_key(deliveries[0].queue)], args

    def fetch_acking(
        self: _Broker, acks: list[Delivery], queues: Sequence[str], max_count: int, timeout: float
    ) -> list[Delivery]:
        """``fetch``, with ``acks`` (results written) acknowledged first in the same round
        trip; each one acked is taken off ``acks``, the rest the caller sends again."""
        return self._fetch(queues, max_count, timeout, acks)

    def _fetch_carrying(self: _Broker, script: Any, keys: list[str], args: list[Any], acks: list[Delivery]) -> Any:
        """The fetch script's answer, ``acks`` sent before it in one pipeline (one server,
        one call); ``acks`` is emptied once their call answered without an error."""
        ack_keys, ack_args = self._ack_args(acks)
        pipe = self._conn.blocking.pipeline(transaction=False)
        # EVALSHA itself: a script object on a pipeline costs a SCRIPT EXISTS round trip.
        pipe.evalsha(self._script(ACK).sha, len(ack_keys), *ack_keys, *ack_args)
        pipe.evalsha(script.sha, len(keys), *keys, *args)
        acked, answer = pipe.execute(raise_on_error=False)
        if not isinstance(acked, Exception):
            acks.clear()
        if isinstance(answer, NoScriptError):  # a restarted server: the script object loads it
            return script(keys=keys, args=args, client=self._conn.blocking)
        if isinstance(answer, Exception):
            raise answer
        return answer
