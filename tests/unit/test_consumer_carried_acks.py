"""A consumer whose broker carries acks with the next fetch (AcksWithFetch) sends again the
acks of a fetch that failed: none is lost, no message runs twice."""

from __future__ import annotations

import uuid
from collections.abc import Sequence

import pytest

from taskq import TaskQ
from taskq.brokers.base import Delivery
from taskq.brokers.memory import MemoryBroker
from taskq.config import Settings
from taskq.errors import BrokerError
from taskq.worker import consumer, runner
from tests.integration.workers import wait_until
from tests.unit.conftest import inline_worker


class AckingOnFetch(MemoryBroker):
    """Carries acks with its fetch; the first fetch that carries some fails."""

    def __init__(self, url: str, settings: Settings | None = None) -> None:
        super().__init__(url, settings)
        self.failed = 0
        self.carried: list[str] = []

    def fetch_acking(
        self, acks: list[Delivery], queues: Sequence[str], max_count: int, timeout: float
    ) -> list[Delivery]:
        if not self.failed:
            self.failed += 1
            raise BrokerError("connection lost")
        self.carried += [d.envelope.id for d in acks if d.envelope]
        self.ack(acks)
        acks.clear()
        return self.fetch(queues, max_count, timeout)


def test_the_acks_of_a_failed_fetch_are_sent_again(monkeypatch: pytest.MonkeyPatch) -> None:
    # The finished tasks' acks wait for the next fetch (the keeper would flush them after FLUSH_AFTER).
    monkeypatch.setattr(runner, "FLUSH_AFTER", 30.0)
    monkeypatch.setattr(consumer, "FLUSH_AFTER", 30.0)
    name = uuid.uuid4().hex
    # A claim lost with its ack would wait for this recovery time, then run a second time.
    app = TaskQ("tests", broker=f"memory://{name}", backend=f"memory://{name}", recovery_time=60.0)
    broker = AckingOnFetch(app.conf.broker_url, app.conf)
    monkeypatch.setattr("taskq.app.create_broker", lambda url, settings: broker)
    runs: list[int] = []

    @app.task
    def record(n: int) -> None:
        runs.append(n)

    # Given tasks queued, and a broker whose first fetch that carries acks fails
    for n in range(6):
        record.delay(n)
    with inline_worker(app):
        # Then every message is settled soon (none waits for its claim to expire), each ran once
        wait_until(lambda: len(runs) == 6 and not broker._s.messages, 10, "every message acked")
    assert broker.failed == 1
    assert sorted(runs) == list(range(6))
    assert broker.carried  # the later fetches carried acks
