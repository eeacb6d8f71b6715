"""RabbitMQ side by side: taskq, Celery and Dramatiq enqueue and drain rates on one server.

    python -m bench.rabbitmq_drain [--count 20000] [--url amqp://guest:guest@127.0.0.1:5672//] [LIB ...]

For each library, in a fresh vhost (made with rabbitmqctl, so run it on the RabbitMQ host):
single-call enqueue of ``--count`` no-op tasks (taskq with publisher confirms, its default,
and without; the peers with their defaults, which do not wait for confirms), taskq's bulk
enqueue, then two worker processes drain the queue. The drain rate is the steady one: from
the moment the first messages are gone until the queue is empty, so start-up is not counted.
``raw`` is not a peer but the ceiling: ``--count`` protocol-v2 messages published with bare
pika, drained by two bare pika consumer processes (bench.rabbitmq_raw: prefetch 512, one
``basic.ack multiple`` per 64, JSON decoding of each body).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import textwrap
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import quote, urlsplit, urlunsplit

import pika

from bench import rabbitmq_publish, rabbitmq_raw
from taskq.brokers.rabbitmq import connection_parameters
from taskq.brokers.rabbitmq.wire import to_amqp

AMQP_URL = os.environ.get("AMQP_URL", "amqp://guest:guest@127.0.0.1:5672//")
REPO = Path(__file__).resolve().parents[1]

PROJECTS = {
    "taskq": """
        from taskq import TaskQ
        app = TaskQ("bench_tasks", backend="none")

        @app.task
        def noop(i):
            return i
    """,
    "celery": """
        import os
        from celery import Celery
        app = Celery("bench_tasks", broker=os.environ["BENCH_URL"])
        app.conf.update(task_ignore_result=True, task_acks_late=True, worker_prefetch_multiplier=4)

        @app.task
        def noop(i):
            return i
    """,
    "dramatiq": """
        import os
        import dramatiq
        from dramatiq.brokers.rabbitmq import RabbitmqBroker
        dramatiq.set_broker(RabbitmqBroker(url=os.environ["BENCH_URL"]))

        @dramatiq.actor(queue_name="celery")
        def noop(i):
            return i
    """,
}
WORKERS = {
    "taskq": [sys.executable, "-m", "taskq", "worker", "-A", "bench_tasks:app", "-P", "prefork", "-c", "2"],
    "celery": [sys.executable, "-m", "celery", "-A", "bench_tasks", "worker", "-P", "prefork", "-c", "2",
               "--without-heartbeat", "--without-mingle", "--without-gossip", "-l", "warning"],
    "dramatiq": [sys.executable, "-m", "dramatiq", "bench_tasks", "-p", "2", "-t", "1"],
}  # fmt: skip
PROJECTS["raw"] = ""  # two bare pika consumers (bench.rabbitmq_raw): the ceiling, not a peer


def rabbitmqctl(*args: str) -> None:
    subprocess.run(["rabbitmqctl", "-q", *args], check=True, capture_output=True, timeout=60)


@contextmanager
def fresh_vhost(url: str) -> Iterator[str]:
    name = f"bench-{uuid.uuid4().hex[:10]}"
    rabbitmqctl("add_vhost", name)
    try:
        rabbitmqctl("set_permissions", "-p", name, connection_parameters(url).credentials.username, ".*", ".*", ".*")
        parts = urlsplit(url)
        yield urlunsplit((parts.scheme, parts.netloc, "/" + quote(name, safe=""), parts.query, ""))
    finally:
        rabbitmqctl("delete_vhost", name)


def ready(url: str, queue: str = "celery") -> int:
    with pika.BlockingConnection(connection_parameters(url)) as connection:
        try:
            return int(connection.channel().queue_declare(queue, passive=True).method.message_count)
        except pika.exceptions.ChannelClosedByBroker:
            return 0


def timed(label: str, count: int, run: Callable[[], object]) -> None:
    started = time.perf_counter()
    run()
    print(f"  enqueue {label:<40} {count / (time.perf_counter() - started):>9,.0f}/s")


def drain(lib: str, url: str, folder: Path, count: int) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TASKQ_")}
    env.update(BENCH_URL=url, TASKQ_BROKER_URL=url, PYTHONPATH=os.pathsep.join([str(folder), str(REPO)]))
    commands = [[sys.executable, "-m", "bench.rabbitmq_raw", "celery"]] * 2 if lib == "raw" else [WORKERS[lib]]
    workers = [subprocess.Popen(c, cwd=folder, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
               for c in commands]  # fmt: skip
    try:
        first: tuple[float, int] | None = None
        while True:
            left = ready(url)
            now = time.perf_counter()
            if first is None and left <= count - min(2000, count // 10):
                first = (now, left)
            if first is not None and left == 0:
                break
            time.sleep(0.02)
        print(f"  drain (2 processes, steady)                      {first[1] / (now - first[0]):>9,.0f}/s")
    finally:
        for worker in workers:
            worker.terminate()
        for worker in workers:
            worker.wait(30)


def bench(lib: str, url: str, count: int) -> None:
    print(lib)
    with tempfile.TemporaryDirectory() as tmp, fresh_vhost(url) as vhost:
        folder = Path(tmp)
        (folder / "bench_tasks.py").write_text(textwrap.dedent(PROJECTS[lib]))
        os.environ["BENCH_URL"] = vhost
        sys.path.insert(0, str(folder))
        sys.modules.pop("bench_tasks", None)
        try:
            import bench_tasks  # type: ignore[import-not-found]

            if lib == "taskq":
                app, noop, few = bench_tasks.app, bench_tasks.noop, min(count, 3000)
                app.conf.broker_url = vhost
                timed("delay(), confirmed (default)", few, lambda: [noop.delay(i) for i in range(few)])
                app.close()
                app.conf.broker_transport_options = {"confirm_publish": False}
                timed("delay(), unconfirmed", count, lambda: [noop.delay(i) for i in range(count)])
                app.close()
                app.conf.broker_transport_options = {}
                timed("delay_many(), confirmed", count, lambda: noop.delay_many([(i,) for i in range(count)]))
                app.close()
                total = few + 2 * count
                while ready(vhost) < total:  # the unconfirmed ones may still be on their way
                    time.sleep(0.05)
                drain(lib, vhost, folder, total)
            elif lib == "raw":
                message = rabbitmq_publish.envelope()
                headers = to_amqp(message).headers
                timed("raw pika, unconfirmed, protocol-v2 headers", count,
                      lambda: rabbitmq_raw.publish(vhost, "celery", message.body, headers, count))  # fmt: skip
                while ready(vhost) < count:
                    time.sleep(0.05)
                drain(lib, vhost, folder, count)
            elif lib == "celery":
                timed("delay() (unconfirmed default)", count, lambda: [bench_tasks.noop.delay(i) for i in range(count)])
                drain(lib, vhost, folder, count)
            else:
                timed("send() (unconfirmed default)", count, lambda: [bench_tasks.noop.send(i) for i in range(count)])
                drain(lib, vhost, folder, count)
        finally:
            sys.path.remove(str(folder))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--count", type=int, default=20000)
    parser.add_argument("--url", default=AMQP_URL)
    parser.add_argument("libs", nargs="*", default=["taskq", "raw", "dramatiq", "celery"])
    args = parser.parse_args()
    for lib in args.libs:
        bench(lib, args.url, args.count)


if __name__ == "__main__":
    main()
