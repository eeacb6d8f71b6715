"""Bare pika on RabbitMQ: the ceilings taskq's RabbitMQ rows are measured against.

``consume(url, queue, n)`` takes n messages with basic.consume (prefetch PREFETCH, manual
acks, one ``basic.ack multiple`` per ACK_EVERY deliveries), decodes each body as JSON and calls
a no-op: the consume ceiling of one pika process. ``python -m bench.rabbitmq_raw QUEUE`` runs
the same loop on ``BENCH_URL`` until SIGTERM (bench.rabbitmq_drain starts two, as its "raw" library).
"""

from __future__ import annotations

import json
import os
import signal
import sys
import time
from types import FrameType
from typing import Any

import pika

from taskq.brokers.rabbitmq import connection_parameters

PREFETCH = 512
ACK_EVERY = 64


def noop() -> None:
    return None


def declare(channel: Any, queue: str) -> None:
    """The queue as taskq declares it: durable, with priorities."""
    channel.queue_declare(queue, durable=True, arguments={"x-max-priority": 10})


def publish(url: str, queue: str, body: bytes, headers: dict[str, Any] | None, n: int) -> None:
    """n persistent messages, unconfirmed (the server's ingest ceiling)."""
    properties = pika.BasicProperties(delivery_mode=2, content_type="application/json", headers=headers)
    with pika.BlockingConnection(connection_parameters(url)) as connection:
        channel = connection.channel()
        declare(channel, queue)
        for _ in range(n):
            channel.basic_publish("", queue, body, properties)


def run(url: str, queue: str, n: int | None, stop: list[bool]) -> int:
    """Consume until n messages (None: until stop[0]); returns how many were taken."""
    taken = 0
    with pika.BlockingConnection(connection_parameters(url)) as connection:
        channel = connection.channel()
        declare(channel, queue)
        channel.basic_qos(prefetch_count=PREFETCH)
        for method, _properties, body in channel.consume(queue, inactivity_timeout=0.2):
            if method is None:
                if stop[0]:
                    break
                continue
            args, kwargs, _embed = json.loads(body)
            noop(*args, **kwargs)
            taken += 1
            if taken % ACK_EVERY == 0 or taken == n:
                channel.basic_ack(method.delivery_tag, multiple=True)
            if taken == n or stop[0]:
                break
        channel.cancel()
    return taken


def consume(url: str, queue: str, n: int) -> float:
    """Messages per second one process consumes, n already queued."""
    started = time.perf_counter()
    run(url, queue, n, [False])
    return n / (time.perf_counter() - started)


def main() -> None:
    stop = [False]

    def on_term(signum: int, frame: FrameType | None) -> None:
        stop[0] = True

    signal.signal(signal.SIGTERM, on_term)
    url = os.environ.get("BENCH_URL", "amqp://guest:guest@127.0.0.1:5672//")
    run(url, sys.argv[1], None, stop)


if __name__ == "__main__":
    main()
