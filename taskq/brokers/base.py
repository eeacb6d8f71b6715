"""The Broker protocol: everything the worker and producers need from a message broker.

Nothing outside ``taskq/brokers`` knows which broker is in use. A broker moves envelopes
between producers and workers and keeps three promises (DESIGN.md section 4):

* at-least-once: a fetched message is *claimed*, not removed. It leaves the broker only on
  ``ack`` or ``dead_letter``. A claim that is not extended within the recovery time
  expires, and the message is delivered again (an *involuntary* redelivery, counted in
  ``Delivery.redeliveries``). ``requeue`` gives a message back at once without counting.
* delayed messages (``eta``) wait inside the broker, never in worker memory;
* priority 0-9, 9 first, the same on every broker.

An instance is safe to use from several threads of one process. After ``os.fork`` the
child must not reuse the parent's connections: implementations reconnect lazily when they
notice a new pid.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

from taskq.envelope import Envelope


@dataclass(slots=True)
class Delivery:
    """A claimed message. ``tag`` is the broker's own receipt; only that broker reads it."""

    envelope: Envelope | None
    queue: str
    tag: Any
    redeliveries: int = 0
    raw: bytes | None = None  # the undecodable bytes when ``envelope`` is None
    error: str | None = None  # why the envelope could not be decoded


@dataclass(slots=True)
class DeadLetter:
    """A message the worker refused to run (or gave up on), with the reason."""

    id: str
    queue: str
    reason: str
    failed_at: float
    raw: bytes


@dataclass(slots=True)
class Publication:
    """One message for ``publish_many``. With ``exchange`` set (RabbitMQ only: taskq/routing.py
    resolves exchanges to queues for the other brokers) it goes to that exchange with
    ``routing_key``, and ``queue`` is the routed queue ("" when the route names none)."""

    queue: str
    envelope: Envelope
    eta: float | None = None  # unix time; None or past means ready now
    exchange: str = ""
    routing_key: str = ""


@runtime_checkable
class Broker(Protocol):
    url: str
    # True when ``Delivery.redeliveries`` is the broker's own count of involuntary
    # redeliveries (sqlite column, Redis stream counter). False when the broker only knows
    # *that* a message was redelivered (RabbitMQ classic queues): it then reports 1, and the
    # worker keeps the count in the result backend (one atomic increment per redelivery).
    counts_redeliveries: bool

    def publish(self, queue: str, envelope: Envelope, eta: float | None = None) -> None:
        """Store one message durably; with ``eta`` (unix time) it becomes ready then."""

    def publish_many(self, items: Sequence[Publication]) -> None:
        """Store many messages in as few round trips as the broker allows."""

    def fetch(self, queues: Sequence[str], max_count: int, timeout: float) -> list[Delivery]:
        """Claim up to ``max_count`` ready messages, waiting up to ``timeout`` seconds.

        Higher priority first, then oldest first; ``queues`` earlier in the list win ties
        on a broker that cannot merge queues by priority. Returns [] on timeout.
        """

    def ack(self, deliveries: Sequence[Delivery]) -> None:
        """Remove finished messages for good."""

    def requeue(self, deliveries: Sequence[Delivery]) -> None:
        """Give unstarted (or abandoned) messages back at once; not counted as redelivery."""

    def dead_letter(self, delivery: Delivery, reason: str) -> None:
        """Move a message to its queue's dead-letter store with the reason (and ack it)."""

    def extend(self, deliveries: Sequence[Delivery]) -> None:
        """Keep claims alive: the owner is working on them."""

    def queue_length(self, queue: str) -> int:
        """Messages in the queue: ready, delayed and claimed."""

    def queues(self) -> list[str]:
        """Names of the queues this broker knows that hold messages or dead letters."""

    def purge(self, queue: str) -> int:
        """Delete every unclaimed message of the queue; returns how many."""

    def dead_letters(self, queue: str | None = None, limit: int = 100) -> list[DeadLetter]:
        """List dead letters, oldest first."""

    def dead_letter_count(self, queue: str) -> int:
        """How many dead letters a queue has, counted where they are stored (no payload moves)."""

    def requeue_dead_letters(self, queue: str | None = None, ids: Sequence[str] = ()) -> int:
        """Put dead letters (all, or those ids) back on their queues; returns how many."""

    def purge_dead_letters(self, queue: str | None = None) -> int:
        """Delete dead letters; returns how many."""

    def close(self) -> None:
        """Release connections; the broker may be used again (it reconnects)."""


@runtime_checkable
class ClaimsByOwner(Protocol):
    """A broker whose claims belong to a named owner, one per process, that another process
    can keep alive. The prefork supervisor extends its children's claims this way: a child
    whose task holds the GIL (one long C call) cannot run its own keeper thread. RabbitMQ's
    claims belong to a channel instead and need no extension from outside."""

    @property
    def claim_owner(self) -> str:
        """The owner name of this process's claims."""

    def extend_owner(self, owner: str, queues: Sequence[str]) -> int:
        """Keep alive every claim ``owner`` holds on ``queues``; returns how many. A claim
        another owner took over meanwhile is not touched."""

    def abandon(self, deliveries: Sequence[Delivery]) -> None:
        """Let these claims lapse now, as if their holder had died: the messages come back at
        once and their redelivery is counted (max_deliveries). A consumer that dies, or fails
        a message in a way it cannot settle, calls this: its process lives on, and whoever
        keeps that process's claims (extend_owner) would otherwise keep them forever."""


@runtime_checkable
class InterruptibleFetch(Protocol):
    """A broker whose idle fetch may wait longer than the worker's usual fetch timeout,
    because a stop can cut that wait short (the Redis broker over many queues: each wake-up
    of an idle fetcher is a command to the server)."""

    def fetch_timeout(self, queues: Sequence[str], default: float) -> float:
        """How long a fetch on ``queues`` may wait for messages (``default`` if no longer)."""

    def interrupt_fetch(self) -> None:
        """End a waiting fetch now (it returns nothing), and wait no longer than usual from
        now on. Safe to call from a signal handler or another thread."""


@runtime_checkable
class AcksWithFetch(Protocol):
    """A broker that can acknowledge a finished batch in the round trip of the next fetch
    (Redis: one request a batch instead of two)."""

    def fetch_acking(
        self, acks: list[Delivery], queues: Sequence[str], max_count: int, timeout: float
    ) -> list[Delivery]:
        """``fetch``, with ``acks`` (whose results are written) acknowledged first. Each one
        acked is taken off ``acks``; those left when it returns or raises were not acked,
        or are not known to be, and the caller sends them again (an ack sent twice, or
        after the first applied, touches no other message)."""


@runtime_checkable
class PushesAhead(Protocol):
    """A broker that sends a consumer messages before it asks for them (RabbitMQ's prefetch).
    They wait in the process, where a long task would strand them while other workers idle:
    the worker calls ``release_pushed`` once its running task passes ``worker_hold_limit``."""

    def release_pushed(self) -> int:
        """Unless a fetch of this process is waiting (it takes them), stop the pushing until
        the next fetch and hand back what was pushed and not fetched, not counted as
        redeliveries; returns how many went back."""


def decode_delivery(raw: bytes, queue: str, tag: Any, redeliveries: int) -> Delivery:
    """Build a Delivery from a stored blob, keeping undecodable bytes for the dead letters."""
    try:
        return Delivery(Envelope.from_bytes(raw), queue, tag, redeliveries)
    except Exception as exc:  # one bad message must never fail the whole fetch
        return undecodable(raw, queue, tag, redeliveries, exc)


def undecodable(raw: bytes, queue: str, tag: Any, redeliveries: int, exc: Exception) -> Delivery:
    """The Delivery of a message whose decoding raised ``exc``: every broker's fetch turns such
    a message into this instead of raising, so the rest of its batch is delivered, and the
    worker dead-letters this one with the reason."""
    return Delivery(None, queue, tag, redeliveries, raw=raw, error=describe_error(exc))


def describe_error(exc: BaseException, limit: int = 500) -> str:
    """A one-line reason for a dead letter, bounded: some messages are huge (a ValueError may
    quote the whole input)."""
    from taskq.errors import TaskQError

    try:
        text = str(exc) if isinstance(exc, TaskQError) else f"{type(exc).__name__}: {exc}"
    except Exception:  # its str() fails too (a deeply nested argument)
        text = type(exc).__name__
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 3] + "..."
