"""Several RabbitMQ nodes in one broker URL, in failover order (a cluster's nodes).

``amqp://guest:guest@node1:5672//;amqp://guest:guest@node2:5672//`` as Celery and kombu
write it: each connection attempt tries the nodes in the order given and keeps the first
that answers, so clients go back to the preferred node once it is up again after a failover.
"""

from __future__ import annotations

from collections.abc import Sequence

import pika

from taskq.brokers.rabbitmq.link import Link
from taskq.errors import BrokerError


def failover_urls(url: str) -> list[str]:
    """The URLs of a ``;``-separated list, in order (one URL: itself)."""
    return [part.strip() for part in url.split(";") if part.strip()]


def open_link(nodes: Sequence[pika.ConnectionParameters], timeout: float) -> Link:
    """A Link to the first node that answers; the last node's error if none does."""
    errors: list[str] = []
    for params in nodes:
        try:
            return Link(params, timeout)
        except BrokerError as exc:
            if len(nodes) == 1:
                raise  # one node: its own line, as before failover URLs
            errors.append(f"{params.host}:{params.port}: {exc}")
    raise BrokerError("; ".join(errors))
