"""RabbitMQ publishing and draining rates of taskq's pika broker, the price of confirms shown.

    python -m bench.rabbitmq_publish [--count 20000] [--url amqp://guest:guest@127.0.0.1:5672//]

Rows: one publish() per message waiting for its confirm (taskq's default); the same
without confirms; publish_many() of the whole batch with confirms (all in flight, then every
confirm awaited) and without; app.send_task() (message building + confirmed publish); and a
single-process drain (fetch + ack); and raw pika without confirms, with and without the
protocol's headers table, for the server's own ceiling. Each row uses its own queue, deleted
afterwards.
"""

from __future__ import annotations

import argparse
import os
import time
import uuid
from collections.abc import Callable

import pika

from taskq import TaskQ
from taskq.brokers.base import Publication
from taskq.brokers.rabbitmq import RabbitMQBroker, connection_parameters
from taskq.brokers.rabbitmq.wire import to_amqp
from taskq.config import Settings
from taskq.envelope import Envelope

AMQP_URL = os.environ.get("AMQP_URL", "amqp://guest:guest@127.0.0.1:5672//")


def envelope() -> Envelope:
    task_id = str(uuid.uuid4())
    headers = {
        "lang": "py", "task": "bench.noop", "id": task_id, "root_id": task_id, "parent_id": None,
        "group": None, "retries": 0, "eta": None, "expires": None, "timelimit": [None, None],
        "argsrepr": "()", "kwargsrepr": "{}", "origin": "bench@host",
    }  # fmt: skip
    body = b'[[], {}, {"callbacks": null, "errbacks": null, "chain": null, "chord": null}]'
    return Envelope(headers, body, properties={"correlation_id": task_id, "priority": 0})


def broker(url: str, confirm: bool) -> RabbitMQBroker:
    settings = Settings()
    settings.broker_transport_options = {"confirm_publish": confirm}
    return RabbitMQBroker(url, settings)


def ready(url: str, queue: str) -> int:
    with pika.BlockingConnection(connection_parameters(url)) as connection:
        return int(connection.channel().queue_declare(queue, passive=True).method.message_count)


def delete(url: str, queue: str) -> None:
    with pika.BlockingConnection(connection_parameters(url)) as connection:
        connection.channel().queue_delete(queue)


def rate(url: str, count: int, label: str, run: Callable[[str, int], None]) -> None:
    queue = f"bench-{uuid.uuid4().hex[:8]}"
    try:
        started = time.perf_counter()
        run(queue, count)
        returned = time.perf_counter() - started
        while ready(url, queue) < count:  # unconfirmed rows: count until RabbitMQ has them all
            time.sleep(0.01)
        stored = time.perf_counter() - started
        print(f"{label:<44} {count:>7} msgs  {count / returned:>9,.0f}/s returned  {count / stored:>9,.0f}/s stored")
    finally:
        delete(url, queue)


def raw_pika(url: str, with_headers: bool) -> Callable[[str, int], None]:
    def run(queue: str, n: int) -> None:
        message = envelope()
        headers = to_amqp(message).headers if with_headers else None
        properties = pika.BasicProperties(delivery_mode=2, content_type="application/json", headers=headers)
        with pika.BlockingConnection(connection_parameters(url)) as connection:
            channel = connection.channel()
            channel.queue_declare(queue, durable=True, arguments={"x-max-priority": 10})
            for _ in range(n):
                channel.basic_publish("", queue, message.body, properties)

    return run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--count", type=int, default=20000)
    parser.add_argument("--url", default=AMQP_URL)
    args = parser.parse_args()
    url, count = args.url, args.count
    confirmed, unconfirmed = broker(url, True), broker(url, False)

    def single(b: RabbitMQBroker) -> Callable[[str, int], None]:
        def run(queue: str, n: int) -> None:
            for _ in range(n):
                b.publish(queue, envelope())

        return run

    def batch(b: RabbitMQBroker) -> Callable[[str, int], None]:
        return lambda q, n: b.publish_many([Publication(q, envelope()) for _ in range(n)])

    app = TaskQ("bench", broker=url, backend="none")

    def send_task(queue: str, n: int) -> None:
        for _ in range(n):
            app.send_task("bench.noop", queue=queue)

    rate(url, min(count, 3000), "publish() confirmed, one at a time", single(confirmed))
    rate(url, count, "publish() unconfirmed, one at a time", single(unconfirmed))
    rate(url, count, "publish_many() confirmed, batched", batch(confirmed))
    rate(url, count, "publish_many() unconfirmed", batch(unconfirmed))
    rate(url, min(count, 3000), "app.send_task() confirmed", send_task)
    # The server's own ceiling: raw pika, no confirms, into a queue declared as taskq declares
    # it. The AMQP headers table of a protocol-v2 message is most of RabbitMQ's work per message.
    rate(url, count, "raw pika unconfirmed, no headers (ceiling)", raw_pika(url, with_headers=False))
    rate(url, count, "raw pika unconfirmed, protocol-v2 headers", raw_pika(url, with_headers=True))

    queue = f"bench-{uuid.uuid4().hex[:8]}"
    try:
        confirmed.publish_many([Publication(queue, envelope()) for _ in range(count)])
        drained, started = 0, time.perf_counter()
        while drained < count:
            got = confirmed.fetch([queue], 100, timeout=5)
            confirmed.ack(got)
            drained += len(got)
        elapsed = time.perf_counter() - started
        print(f"{'drain: fetch(100) + ack, one process':<44} {count:>7} msgs  {count / elapsed:>9,.0f}/s")
    finally:
        app.close()
        confirmed.close()
        unconfirmed.close()
        delete(url, queue)


if __name__ == "__main__":
    main()
