"""countdown/eta on RabbitMQ wait broker-side: in a TTL delay queue no consumer holds.

A delivery held unacked past RabbitMQ's consumer_timeout closes its channel, so an ETA
message must never wait inside a worker. These tests look at the node itself
(rabbitmqctl list_queues) while a worker consumes the target queue.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from taskq import TaskQ
from tests.contract.rabbitmq_factories import list_queues, vhost_of
from tests.integration.conftest import rabbitmq_worker_env
from tests.integration.workers import WorkerFactory, wait_until

pytestmark = [pytest.mark.rabbitmq, pytest.mark.slow]


@pytest.fixture
def broker_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, str]]:
    yield from rabbitmq_worker_env(tmp_path, monkeypatch)


def test_a_waiting_eta_message_is_held_by_no_consumer_and_runs_once(
    workers: WorkerFactory, producer: TaskQ, broker_env: dict[str, str]
) -> None:
    vhost = vhost_of(broker_env["TASKQ_BROKER_URL"])
    # Given a worker consuming the queue
    workers.start("-c", "2", "-P", "threads")
    wait_until(lambda: list_queues(vhost).get("celery", {}).get("consumers"), 20, "the worker's consumers")
    # When a task is sent with a countdown
    sent = time.time()
    r = producer.send_task("example_tasks.stamp", ("eta",), countdown=6)
    # Then, while it waits, it is ready in a delay queue that nobody consumes, and the worker holds nothing
    listing = list_queues(vhost)
    delayed = {name: q for name, q in listing.items() if ".taskq-delay." in name and q["ready"]}
    assert [(q["ready"], q["unacked"], q["consumers"]) for q in delayed.values()] == [(1, 0, 0)]
    assert listing["celery"]["ready"] == 0 and listing["celery"]["unacked"] == 0
    assert listing["celery"]["consumers"] >= 1
    # And it runs once, not before its time
    ran_at = r.get(timeout=30)
    assert ran_at >= sent + 6
    wait_until(lambda: sum(q["ready"] + q["unacked"] for q in list_queues(vhost).values()) == 0, 10, "empty queues")
    assert workers.marks.count("done")["eta"] == 1


def test_a_two_hour_eta_waits_broker_side_across_worker_restarts(
    workers: WorkerFactory, producer: TaskQ, broker_env: dict[str, str]
) -> None:
    vhost = vhost_of(broker_env["TASKQ_BROKER_URL"])
    first = workers.start("-c", "1")
    producer.send_task("example_tasks.stamp", ("two-hours",), countdown=7200)
    assert first.stop() == 0
    workers.start("-c", "1")
    wait_until(lambda: list_queues(vhost).get("celery", {}).get("consumers"), 20, "the new worker's consumer")
    listing = list_queues(vhost)
    delayed = [q for name, q in listing.items() if ".taskq-delay." in name and q["ready"]]
    assert [(q["ready"], q["unacked"], q["consumers"]) for q in delayed] == [(1, 0, 0)]
    assert listing["celery"]["unacked"] == 0
    assert workers.marks.count("done")["two-hours"] == 0
