"""The table-backed side channels side by side: SQLite (polled) and PostgreSQL (NOTIFY).

    python -m bench.sidechannel [--events 2000] [--pings 100]

For each broker, in one run: events published per second from one thread; how long an
event takes from publish to a subscriber reading it in another thread (mean and p99 over
``--pings`` single events); and a control round trip (``call`` to one node serving in a
thread, the reply read back), mean and p99. PostgreSQL is the local server
(``POSTGRES_URL``, default postgresql://postgres@127.0.0.1:5432/test) in a schema made and
dropped by the run; SQLite a file in a temporary folder.
"""

from __future__ import annotations

import argparse
import math
import os
import statistics
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import psycopg

from taskq.config import Settings
from taskq.control.mailbox import create_mailbox
from taskq.events.bus import create_bus

POSTGRES_URL = os.environ.get("POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test")


@contextmanager
def broker(kind: str) -> Iterator[str]:
    if kind == "sqlite":
        with tempfile.TemporaryDirectory() as tmp:
            yield f"sqlite:///{tmp}/broker.db"
        return
    schema = f"bench_{uuid.uuid4().hex[:10]}"
    try:
        yield f"{POSTGRES_URL}?schema={schema}"
    finally:
        with psycopg.connect(POSTGRES_URL, autocommit=True) as conn:
            conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


def p99(values: list[float]) -> float:
    return sorted(values)[max(0, math.ceil(len(values) * 0.99) - 1)]


def events(url: str, count: int, pings: int) -> tuple[float, list[float]]:
    conf = Settings(broker_url=url)
    bus, reader_bus = create_bus(conf), create_bus(conf)
    sub = reader_bus.subscribe()
    start = time.perf_counter()
    for i in range(count):
        bus.publish({"type": "bench", "n": i})
    rate = count / (time.perf_counter() - start)
    got = 0
    while got < count:  # drain what was published
        got += sum(1 for _ in sub.read(1.0))
    arrived: dict[int, float] = {}
    done = threading.Event()

    def read() -> None:
        while not done.is_set():
            for event in sub.read(0.5):
                arrived[event["n"]] = time.perf_counter()

    thread = threading.Thread(target=read, daemon=True)
    thread.start()
    latencies = []
    for i in range(pings):
        sent = time.perf_counter()
        bus.publish({"type": "bench", "n": -1 - i})
        while -1 - i not in arrived and time.perf_counter() - sent < 5:
            time.sleep(0.0005)
        latencies.append(arrived.get(-1 - i, sent + 5) - sent)
    done.set()
    thread.join(5)
    sub.close()
    bus.close()
    reader_bus.close()
    return rate, latencies


def round_trips(url: str, pings: int) -> list[float]:
    conf = Settings(broker_url=url)
    box = create_mailbox(conf)
    node = create_mailbox(conf).node("bench@here")
    done = threading.Event()

    def serve() -> None:
        while not done.is_set():
            for request in node.poll(0.2):
                if not isinstance(request, str):
                    node.reply(request, "bench@here", {"ok": "pong"})

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    times = []
    for _ in range(pings):
        start = time.perf_counter()
        replies = box.call("ping", {}, ["bench@here"], timeout=5)
        times.append(time.perf_counter() - start)
        assert replies == [{"bench@here": {"ok": "pong"}}], replies
    done.set()
    thread.join(5)
    node.close()
    box.close()
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=2000)
    parser.add_argument("--pings", type=int, default=100)
    args = parser.parse_args()
    ms: Callable[[float], str] = lambda s: f"{s * 1000:.1f}"  # noqa: E731
    print("| broker | events published/s | event latency mean / p99 (ms) | control round trip mean / p99 (ms) |")
    print("|---|---|---|---|")
    for kind in ("sqlite", "postgresql"):
        with broker(kind) as url:
            rate, latencies = events(url, args.events, args.pings)
            trips = round_trips(url, args.pings)
        row: list[Any] = [kind, f"{rate:,.0f}", f"{ms(statistics.mean(latencies))} / {ms(p99(latencies))}",
                          f"{ms(statistics.mean(trips))} / {ms(p99(trips))}"]
        print("| " + " | ".join(row) + " |")


if __name__ == "__main__":
    main()
