"""A signed message still verifies after a trip through every broker (its canonical form does
not depend on how a broker stores headers: AMQP tables, JSON), and fails once changed."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta, timezone

import pytest

from taskq.brokers.base import Broker
from taskq.errors import SignatureError
from taskq.message import build, parse
from taskq.serialization import accepted_content_types, get_serializer
from taskq.signing import Signer

SIGNER = Signer("contract-key", 3600.0)
CUSTOM = {
    "tenant": "acme",
    "count": 3,
    "ratio": 2.0,  # pika reads AMQP doubles back truncated to integers: only integral floats survive
    "flag": True,
    "nothing": None,
    "items": [1, "two", None],
    "nested": {"a": 1, "b": ["c"]},
    "unicode": "żółw ✓",
}


def test_signed_message_verifies_after_the_broker_round_trip(broker: Broker) -> None:
    queue = f"signed-{uuid.uuid4().hex[:8]}"
    envelope = build(
        "tests.signed", (1, "a", [2.5]), {"k": {"x": None}}, task_id=str(uuid.uuid4()),
        serializer=get_serializer("json"), priority=5, timelimit=(30.0, 20.0),
        expires=datetime.now(timezone.utc) + timedelta(hours=1), headers=dict(CUSTOM), signer=SIGNER, queue=queue,
    )
    broker.publish(queue, envelope)
    [delivery] = broker.fetch([queue], 1, timeout=5)
    try:
        assert delivery.envelope is not None
        msg = parse(delivery.envelope, accepted_content_types(["json"]), SIGNER, delivery.queue)
        assert msg.headers["tenant"] == "acme" and msg.priority == 5 and msg.valid_until is not None
        # The same bytes read as if from another queue do not verify.
        with pytest.raises(SignatureError, match="bad signature"):
            parse(delivery.envelope, accepted_content_types(["json"]), SIGNER, queue + "-other")
    finally:
        broker.ack([delivery])
