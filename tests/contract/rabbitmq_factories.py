"""Registers RabbitMQ in the contract suites (imported by tests/contract/conftest.py).

Every test's broker uses its own uniquely named queues; cleanup deletes them with their
dead-letter and delay queues. ``delete_queues`` serves the RabbitMQ integration tests too.
"""

from __future__ import annotations

import shutil
import subprocess
import uuid
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import quote, urlsplit, urlunsplit

import pika
import pytest

from taskq.brokers.base import Broker
from taskq.brokers.rabbitmq import connection_parameters
from taskq.brokers.rabbitmq.wire import MAX_DELAY_LEVEL, dead_queue, delay_queue, is_internal
from taskq.config import Settings
from tests.contract.conftest import BROKERS
from tests.servers import IN_CI, require_rabbitmq


def delete_queues(url: str, queues: Iterable[str]) -> None:
    """Delete the queues with their dead-letter and delay queues (missing ones are fine)."""
    names: set[str] = set()
    for queue in queues:
        names.add(queue)
        if not is_internal(queue):
            names |= {dead_queue(queue), *(delay_queue(queue, n) for n in range(MAX_DELAY_LEVEL + 1))}
    connection = pika.BlockingConnection(connection_parameters(url))
    try:
        channel = connection.channel()
        for name in sorted(names):
            channel.queue_delete(name)
    finally:
        connection.close()


def rabbitmqctl(*args: str) -> str:
    """Run rabbitmqctl against the local node (the management API is not available here)."""
    if shutil.which("rabbitmqctl") is None:
        if IN_CI:
            pytest.fail("rabbitmqctl is not installed, and CI=true requires the RabbitMQ tests to run")
        pytest.skip("rabbitmqctl is not installed")
    done = subprocess.run(["rabbitmqctl", "-q", *args], capture_output=True, text=True, timeout=60)
    if done.returncode != 0:
        raise RuntimeError(f"rabbitmqctl {' '.join(args)} failed: {done.stderr.strip()}")
    return done.stdout


def vhost_of(url: str) -> str:
    return str(connection_parameters(url).virtual_host)


@contextmanager
def fresh_vhost(url: str) -> Iterator[str]:
    """A new vhost (guest has all permissions there) and the URL pointing at it; deleted after."""
    name = f"taskq-test-{uuid.uuid4().hex[:12]}"
    rabbitmqctl("add_vhost", name)
    try:
        rabbitmqctl("set_permissions", "-p", name, connection_parameters(url).credentials.username, ".*", ".*", ".*")
        parts = urlsplit(url)
        yield urlunsplit((parts.scheme, parts.netloc, "/" + quote(name, safe=""), parts.query, ""))
    finally:
        rabbitmqctl("delete_vhost", name)


def list_queues(vhost: str) -> dict[str, dict[str, int]]:
    """Per queue of a vhost: ready, unacked (held by consumers) and consumers, from the node."""
    columns = ("name", "messages_ready", "messages_unacknowledged", "consumers")
    out = rabbitmqctl("list_queues", "-p", vhost, "--no-table-headers", *columns)
    queues: dict[str, dict[str, int]] = {}
    for line in out.splitlines():
        parts = line.split()
        if len(parts) == 4:
            name, ready, unacked, consumers = parts
            queues[name] = {"ready": int(ready), "unacked": int(unacked), "consumers": int(consumers)}
    return queues


def _rabbitmq_broker(tmp_path: Path, settings: Settings) -> tuple[Broker, Callable[[], None]]:
    from taskq.brokers.rabbitmq import RabbitMQBroker

    url = require_rabbitmq()
    broker = RabbitMQBroker(url, settings)

    def cleanup() -> None:
        names = broker.declared_queues()
        broker.close()
        delete_queues(url, names)

    return broker, cleanup


BROKERS["rabbitmq"] = _rabbitmq_broker
