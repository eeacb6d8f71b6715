"""A message whose headers pika cannot decode is dead-lettered; the worker goes on.

Before taskq read frames itself, a header table nested 3,000 deep raised RecursionError in
pika's frame decoding on the I/O thread: the connection aborted, RabbitMQ requeued the
message, and the worker met it again on reconnecting, forever, while the messages behind
it never ran.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pika
import pytest

from taskq import TaskQ
from taskq.brokers.rabbitmq import connection_parameters
from taskq.brokers.rabbitmq.decode import MAX_HEADER_DEPTH
from tests.amqp_raw import RawProperties, headers_with, nested_table, properties_bytes
from tests.contract.rabbitmq_factories import list_queues, vhost_of
from tests.integration.conftest import rabbitmq_worker_env
from tests.integration.workers import WorkerFactory, wait_until

pytestmark = pytest.mark.rabbitmq


@pytest.fixture
def broker_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, str]]:
    yield from rabbitmq_worker_env(tmp_path, monkeypatch)


def publish_raw(url: str, queue: str, messages: list[tuple[str, bytes]]) -> None:
    """Publish (task id, headers table) messages with raw pika, to a queue declared as taskq does."""
    connection = pika.BlockingConnection(connection_parameters(url))
    try:
        channel = connection.channel()
        channel.queue_declare(queue, durable=True, arguments={"x-max-priority": 10})
        for task_id, headers in messages:
            properties = RawProperties(properties_bytes(headers, correlation_id=task_id))
            channel.basic_publish("", queue, b"[[1, 2], {}, {}]", properties)
    finally:
        connection.close()


def task_headers(task_id: str, nested: bytes) -> bytes:
    return headers_with({"lang": "py", "task": "example_tasks.add", "id": task_id}, "nested", nested)


def test_undecodable_headers_are_dead_lettered_and_the_messages_behind_run(
    broker_env: dict[str, str], workers: WorkerFactory, producer: TaskQ
) -> None:
    # Given, at the head of the queue, a message too deep for pika and one deeper than
    # taskq accepts, then ordinary tasks
    url = broker_env["TASKQ_BROKER_URL"]
    publish_raw(url, "celery", [("deep", task_headers("deep", nested_table(3000)))])
    publish_raw(url, "celery", [("deepish", task_headers("deepish", nested_table(MAX_HEADER_DEPTH + 10)))])
    good = [producer.send_task("example_tasks.sleep_then", (f"k{i}", 0.0)) for i in range(5)]
    # When a worker consumes the queue
    worker = workers.start("-c", "1")
    # Then the good tasks run, once each, and the two bad messages are dead letters
    assert [r.get(timeout=30) for r in good] == [f"k{i}" for i in range(5)]
    assert workers.marks.count("done") == {f"k{i}": 1 for i in range(5)}
    wait_until(lambda: len(producer.broker.dead_letters("celery")) == 2, 15, "2 dead letters")
    letters = producer.broker.dead_letters("celery")
    reasons = sorted(d.reason for d in letters)
    assert reasons == [
        "undecodable message: its AMQP headers cannot be decoded (RecursionError)",
        f"undecodable message: its AMQP headers nest deeper than {MAX_HEADER_DEPTH} levels",
    ]
    assert sorted(d.id for d in letters) == ["deep", "deepish"]  # from the correlation id
    queues = list_queues(vhost_of(url))
    assert queues["celery"]["ready"] == 0 and queues["celery"]["unacked"] == 0
    log = worker.log
    assert "connection to RabbitMQ lost" not in log and "Reconnected" not in log
