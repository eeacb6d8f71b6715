"""RabbitMQ publishing and draining rates of taskq's pika broker, the price of confirms shown.

    python -m bench.rabbitmq_publish [--count 20000] [--runs 3] [--url amqp://guest:guest@127.0.0.1:5672//]

Rows: one publish() per message waiting for its confirm (taskq's default); the same
without confirms; publish_many() of the whole batch with confirms (all in flight, then every
confirm awaited) and without; app.send_task() (message building + confirmed publish); and a
``task.delay_many()`` with confirms (the app's bulk enqueue); raw pika without confirms, with
and without the protocol's headers table, for the server's own ceiling; a single-process
drain (fetch + ack) and raw pika's consume of the same messages (bench.rabbitmq_raw). Each
row uses its own queue, deleted afterwards; ``--runs`` repeats the list, and the last line
gives the ratios of the medians: delay_many to the protocol-v2 ceiling, drain to raw consume.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
import uuid
from collections.abc import Callable

import pika

from bench import rabbitmq_raw
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


def rate(url: str, count: int, label: str, run: Callable[[str, int], None]) -> float:
    """Messages per second stored (RabbitMQ counts them all ready); prints it and the returned rate."""
    queue = f"bench-{uuid.uuid4().hex[:8]}"
    try:
        started = time.perf_counter()
        run(queue, count)
        returned = time.perf_counter() - started
        while ready(url, queue) < count:  # unconfirmed rows: count until RabbitMQ has them all
            time.sleep(0.01)
        stored = time.perf_counter() - started
        print(f"{label:<44} {count:>7} msgs  {count / returned:>9,.0f}/s returned  {count / stored:>9,.0f}/s stored")
        return count / stored
    finally:
        delete(url, queue)


def raw_pika(url: str, with_headers: bool) -> Callable[[str, int], None]:
    def run(queue: str, n: int) -> None:
        message = envelope()
        rabbitmq_raw.publish(url, queue, message.body, to_amqp(message).headers if with_headers else None, n)

    return run


def drains(url: str, count: int, confirmed: RabbitMQBroker) -> tuple[float, float]:
    """(taskq fetch(100) + ack, raw pika consume): one process each, protocol-v2 messages."""
    queue, raw_queue = f"bench-{uuid.uuid4().hex[:8]}", f"bench-{uuid.uuid4().hex[:8]}"  # the first keeps
    try:  # taskq's consumer (and what it prefetched) until the broker closes
        confirmed.publish_many([Publication(queue, envelope()) for _ in range(count)])
        drained, started = 0, time.perf_counter()
        while drained < count:
            got = confirmed.fetch([queue], 100, timeout=5)
            confirmed.ack(got)
            drained += len(got)
        ours = count / (time.perf_counter() - started)
        print(f"{'drain: fetch(100) + ack, one process':<44} {count:>7} msgs  {ours:>9,.0f}/s")
        raw_pika(url, with_headers=True)(raw_queue, count)
        while ready(url, raw_queue) < count:
            time.sleep(0.01)
        raw = rabbitmq_raw.consume(url, raw_queue, count)
        print(f"{'drain: raw pika consume + ack, one process':<44} {count:>7} msgs  {raw:>9,.0f}/s")
        return ours, raw
    finally:
        delete(url, queue)
        delete(url, raw_queue)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--count", type=int, default=20000)
    parser.add_argument("--runs", type=int, default=1, help="rounds of every row (the ratios use medians)")
    parser.add_argument("--url", default=AMQP_URL)
    args = parser.parse_args()
    url, count = args.url, args.count
    if count < 1 or args.runs < 1:
        raise SystemExit("python -m bench.rabbitmq_publish: --count and --runs must be positive")
    confirmed, unconfirmed = broker(url, True), broker(url, False)

    def single(b: RabbitMQBroker) -> Callable[[str, int], None]:
        def run(queue: str, n: int) -> None:
            for _ in range(n):
                b.publish(queue, envelope())

        return run

    def batch(b: RabbitMQBroker) -> Callable[[str, int], None]:
        return lambda q, n: b.publish_many([Publication(q, envelope()) for _ in range(n)])

    app = TaskQ("bench", broker=url, backend="none")
    noop = app.task(name="bench.noop")(rabbitmq_raw.noop)

    def send_task(queue: str, n: int) -> None:
        for _ in range(n):
            app.send_task("bench.noop", queue=queue)

    seen: dict[str, list[float]] = {}
    try:
        for _ in range(args.runs):
            rate(url, min(count, 3000), "publish() confirmed, one at a time", single(confirmed))
            rate(url, count, "publish() unconfirmed, one at a time", single(unconfirmed))
            rate(url, count, "publish_many() confirmed, batched", batch(confirmed))
            rate(url, count, "publish_many() unconfirmed", batch(unconfirmed))
            rate(url, min(count, 3000), "app.send_task() confirmed", send_task)
            many = rate(url, count, "task.delay_many() confirmed", lambda q, n: noop.delay_many([()] * n, queue=q))
            seen.setdefault("delay_many", []).append(many)
            # The server's own ceiling: raw pika, no confirms, into a queue declared as taskq
            # declares it. The AMQP headers table of a protocol-v2 message is most of RabbitMQ's
            # work per message.
            rate(url, count, "raw pika unconfirmed, no headers (ceiling)", raw_pika(url, with_headers=False))
            ceiling = rate(url, count, "raw pika unconfirmed, protocol-v2 headers", raw_pika(url, with_headers=True))
            seen.setdefault("ceiling", []).append(ceiling)
            ours, raw = drains(url, count, confirmed)
            seen.setdefault("drain", []).append(ours)
            seen.setdefault("raw_drain", []).append(raw)
    finally:
        app.close()
        confirmed.close()
        unconfirmed.close()
    mid = {key: statistics.median(values) for key, values in seen.items()}
    print(f"\nmedians of {args.runs} run(s): task.delay_many() confirmed {mid['delay_many']:,.0f}/s = "
          f"{100 * mid['delay_many'] / mid['ceiling']:.0f}% of the protocol-v2 ceiling {mid['ceiling']:,.0f}/s; "
          f"fetch + ack {mid['drain']:,.0f}/s = {100 * mid['drain'] / mid['raw_drain']:.0f}% of raw pika consume "
          f"{mid['raw_drain']:,.0f}/s (one process each)")  # fmt: skip


if __name__ == "__main__":
    main()
