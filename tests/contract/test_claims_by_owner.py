"""Brokers whose claims another process can keep alive (ClaimsByOwner: sqlite, Redis, PostgreSQL).

The prefork supervisor extends its children's claims by owner name, because a child whose
task holds the GIL cannot run its own keeper thread.
"""

from __future__ import annotations

import multiprocessing
import os
import time
from typing import Any

import pytest

from taskq.brokers.base import Broker, ClaimsByOwner
from tests.contract.test_broker_contract import envelope, queue_name


def _claim_and_vanish(broker: Any, queue: str, out: Any) -> None:
    """A worker process: claims one message, reports its owner name, exits without acking."""
    [d] = broker.fetch([queue], 1, timeout=5)
    out.put((broker.claim_owner, d.envelope.id if d.envelope else None))
    out.close()
    out.join_thread()
    os._exit(0)


def test_another_process_keeps_an_owners_claims_alive(broker: Broker) -> None:
    if not isinstance(broker, ClaimsByOwner):
        pytest.skip(f"{type(broker).__name__}'s claims are not kept by owner name")
    q, other_q = queue_name(), queue_name()
    broker.publish(q, envelope("kept"))
    ctx = multiprocessing.get_context("fork")
    out = ctx.Queue()
    child = ctx.Process(target=_claim_and_vanish, args=(broker, q, out))
    child.start()
    owner, claimed = out.get(timeout=20)
    child.join(timeout=10)
    assert claimed == "kept" and owner != broker.claim_owner
    # While this process extends the owner's claims, nobody else can take the message...
    deadline = time.monotonic() + 2.5  # 2.5x the recovery time of these tests
    while time.monotonic() < deadline:
        assert broker.extend_owner(owner, [q]) == 1
        assert broker.extend_owner(owner, [other_q]) == 0  # only the queues named
        assert broker.fetch([q], 1, timeout=0.3) == []
    # ...and once it stops, the claim expires like any other, counted as a redelivery.
    [again] = broker.fetch([q], 1, timeout=5)
    assert again.redeliveries == 1
    assert broker.extend_owner(owner, [q]) == 0  # taken over: no longer the old owner's
    broker.ack([again])
    assert broker.queue_length(q) == 0


def test_an_abandoned_claim_comes_back_at_once_counted_and_is_no_longer_kept(broker: Broker) -> None:
    if not isinstance(broker, ClaimsByOwner):
        pytest.skip(f"{type(broker).__name__}'s claims are not kept by owner name")
    # Given a message this process claimed and keeps alive by owner name (as keeper.py does)
    q = queue_name()
    broker.publish(q, envelope("given-up"))
    [held] = broker.fetch([q], 1, timeout=5)
    assert broker.extend_owner(broker.claim_owner, [q]) == 1
    # When its consumer gives it up (it died, or cannot settle it)
    broker.abandon([held])
    # Then the owner's keeper no longer holds it, and the next fetch takes it at once, counted
    assert broker.extend_owner(broker.claim_owner, [q]) == 0
    started = time.monotonic()
    [again] = broker.fetch([q], 1, timeout=5)
    assert time.monotonic() - started < 0.9  # not after the recovery time (1 s here)
    assert again.envelope is not None and again.envelope.id == "given-up"
    assert again.redeliveries == 1
    broker.ack([again])
    assert broker.queue_length(q) == 0
