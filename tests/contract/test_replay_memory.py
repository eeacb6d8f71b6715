"""The worker's replay memory on every result backend's server (and without one)."""

from __future__ import annotations

import time
import uuid
from datetime import datetime, timedelta, timezone

import pytest

from taskq.backends.base import ResultBackend
from taskq.brokers.base import Delivery
from taskq.message import TaskMessage, build, parse
from taskq.serialization import accepted_content_types, get_serializer
from taskq.signing import Signer
from taskq.worker.replay import ReplayMemory

SIGNER = Signer("replay-key", 3600.0)


def signed_delivery(redeliveries: int = 0, eta: datetime | None = None) -> tuple[Delivery, TaskMessage]:
    envelope = build(
        "t.x", (), {}, task_id=str(uuid.uuid4()), serializer=get_serializer("json"), signer=SIGNER, queue="q", eta=eta
    )
    msg = parse(envelope, accepted_content_types(["json"]), SIGNER, "q")
    return Delivery(envelope, "q", None, redeliveries), msg


@pytest.mark.parametrize("shared", [True, False], ids=["backend", "no-backend"])
def test_a_copy_is_seen_a_redelivery_is_not_and_forget_clears(backend: ResultBackend, shared: bool) -> None:
    memory = ReplayMemory(lambda: backend if shared else None)
    delivery, msg = signed_delivery()
    assert not memory.seen_before(delivery, msg)
    assert memory.seen_before(delivery, msg)  # the exact copy
    redelivered = Delivery(delivery.envelope, "q", None, 1)
    assert not memory.seen_before(redelivered, msg)  # the broker's own redelivery
    assert delivery.envelope is not None
    memory.forget(delivery.envelope.headers)
    assert not memory.seen_before(delivery, msg)
    other, other_msg = signed_delivery()
    assert not memory.seen_before(other, other_msg)  # another message


def test_the_memory_is_shared_through_the_backend_server(backend: ResultBackend) -> None:
    # Two workers (two memories) on one backend: the second sees the first's message.
    first, second = ReplayMemory(lambda: backend), ReplayMemory(lambda: backend)
    delivery, msg = signed_delivery()
    assert not first.seen_before(delivery, msg)
    assert second.seen_before(delivery, msg)


@pytest.mark.parametrize("shared", [True, False], ids=["backend", "no-backend"])
def test_the_memory_lasts_until_the_window_closes(backend: ResultBackend, shared: bool) -> None:
    memory = ReplayMemory(lambda: backend if shared else None)
    delivery, msg = signed_delivery()
    msg.valid_until = datetime.now(timezone.utc) + timedelta(seconds=0.3)
    assert not memory.seen_before(delivery, msg)
    assert memory.seen_before(delivery, msg)
    time.sleep(0.5)  # the scenario is the window passing: after it the window check refuses copies
    assert not memory.seen_before(delivery, msg)
