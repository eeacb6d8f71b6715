"""``taskq queues`` on RabbitMQ lists every queue of the vhost through the management API
(a throwaway node with rabbitmq_management on: never the shared server), and the queues it
knows, with a note, when the API does not answer."""

from __future__ import annotations

import base64
import json
import time
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path

import pika
import pytest

from taskq import TaskQ
from taskq.brokers.base import Delivery
from tests.integration.rabbitmq_node import ThrowawayNode, require_throwaway_node
from tests.integration.test_cli import taskq
from tests.integration.workers import base_env
from tests.servers import free_port
from tests.throwaway import serve

pytestmark = [pytest.mark.rabbitmq, pytest.mark.slow]


class ManagementNode(ThrowawayNode):
    """A node with the management plugin, its HTTP API on its own loopback port."""

    def __init__(self) -> None:
        self.management_port = free_port()
        super().__init__()
        (self.folder / "enabled_plugins").write_text("[rabbitmq_management].\n")

    def extra_config(self) -> list[str]:
        return [f"management.tcp.port = {self.management_port}", "management.tcp.ip = 127.0.0.1"]

    @property
    def management_url(self) -> str:
        return f"http://127.0.0.1:{self.management_port}"

    def start(self) -> None:
        super().start()
        self.wait_for_api()

    def wait_for_api(self, timeout: float = 60.0) -> None:
        request = urllib.request.Request(f"{self.management_url}/api/overview")
        request.add_header("Authorization", "Basic " + base64.b64encode(b"guest:guest").decode())
        deadline = time.monotonic() + timeout
        while True:
            try:
                with urllib.request.urlopen(request, timeout=5):
                    return
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.5)


@pytest.fixture(scope="module")
def node() -> Iterator[ManagementNode]:
    require_throwaway_node()
    node = ManagementNode()
    yield from serve(node, node.remove)


def fetched(app: TaskQ, task_id: str, timeout: float = 10.0) -> Delivery:
    """The delivery of ``task_id`` from the default queue. One fetch may return before the
    consumer has every message (RabbitMQ pushes them one by one), so fetch until it is there;
    the others stay unacked and go back to the queue when the app closes."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for delivery in app.broker.fetch(["celery"], 3, timeout=1):
            if delivery.envelope and delivery.envelope.id == task_id:
                return delivery
    raise AssertionError(f"{task_id} never fetched from the default queue")


def listed(env: dict[str, str]) -> tuple[dict[str, tuple[int, int]], str]:
    proc = taskq("queues", "-A", "example_tasks:app", "--json", env=env)
    assert proc.returncode == 0, proc.stderr
    rows = [json.loads(line) for line in proc.stdout.splitlines()]
    return {row["queue"]: (row["messages"], row["dead"]) for row in rows}, proc.stderr


def test_queues_lists_every_queue_of_the_vhost_and_falls_back_without_the_api(
    node: ManagementNode, tmp_path: Path
) -> None:
    # Given a queue taskq never used, declared by another client, holding two messages
    foreign = f"other-app-{uuid.uuid4().hex[:8]}"
    connection = pika.BlockingConnection(pika.URLParameters(f"amqp://guest:guest@127.0.0.1:{node.port}/%2F"))
    try:
        channel = connection.channel()
        channel.queue_declare(foreign, durable=True)
        for body in (b"a", b"b"):
            channel.basic_publish("", foreign, body)
    finally:
        connection.close()
    # and a task waiting in taskq's default queue, a delayed one and a dead letter (their own queues)
    env = base_env(tmp_path, node.url, "none", TASKQ_BROKER_MANAGEMENT_URL=node.management_url)
    app = TaskQ("producer", broker=node.url, backend="none")
    try:
        app.send_task("example_tasks.add", (1, 2))
        app.send_task("example_tasks.add", (1, 2), countdown=600)
        app.send_task("example_tasks.missing", task_id="dead-1")
        app.broker.dead_letter(fetched(app, "dead-1"), "poison")
    finally:
        app.close()
    # When the management API answers, every queue of the vhost is listed, taskq's own
    # delay and dead-letter queues only as counts of their work queue
    queues, notes = listed(env)
    assert queues == {"celery": (2, 1), foreign: (2, 0)}, queues
    assert notes == ""
    # A login in the management URL is used instead of the broker URL's, and kept out of the request line
    own_login = node.management_url.replace("http://", "http://guest:guest@")
    assert listed({**env, "TASKQ_BROKER_MANAGEMENT_URL": own_login})[0] == queues
    # When it does not answer (plugin off, other port, refused login), the queues taskq
    # knows, with a note that hides the password
    closed = f"http://127.0.0.1:{free_port()}"
    wrong = node.management_url.replace("http://", "http://guest:wrong@")
    for url, shown in [(closed, closed), (wrong, wrong.replace(":wrong@", ":***@"))]:
        queues, notes = listed({**env, "TASKQ_BROKER_MANAGEMENT_URL": url})
        assert queues == {"celery": (2, 1)}
        assert notes.strip() == f"taskq: note: RabbitMQ management API not reachable at {shown}: listing known queues"
