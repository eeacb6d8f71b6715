"""Redis: countdown lateness of the broker alone (promotion, fetch, ack), without running tasks.

    BENCH_REDIS=redis://127.0.0.1:N python -m bench.countdown_broker [--sizes 20000,100000,1000000]
                                                                    [--spread 60] [--out DIR]

N messages due evenly over ``--spread`` seconds (sent in 600 slices, all before the first is
due), two consumer processes that fetch 64 at a time (a worker's grown batch) and ack; each
records ``time.time() - eta`` when its fetch returned. ``python -m bench.backlog --countdown``
measures the same with a `taskq worker` running the tasks: the difference between the two is
what running the tasks adds (the workers' throughput), this bench's figure is the promotion's.

Results: ``countdown_broker.{md,json}`` in ``--out`` (default bench/results).
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import redis

from bench import measure
from taskq.brokers.base import Publication
from taskq.brokers.redis import RedisBroker
from taskq.config import Settings
from taskq.envelope import Envelope

RESULTS_DIR = Path(__file__).resolve().parent / "results"
QUEUE = "countdown-broker"
BATCH = 64
CONSUMERS = 2
SLICES = 600
SEND_GUESS = 8_000  # messages/s the producer sends at least on a loaded machine


def _envelope(due: float) -> Envelope:
    return Envelope({"task": "bench.due", "id": f"{uuid.uuid4().hex}@{due!r}", "lang": "py"}, b"[[], {}, {}]")


def consume(url: str, count: Any, deadline: float, out: Any) -> None:
    """Fetch and ack until ``count`` messages came to all consumers (a shared counter)."""
    broker = RedisBroker(url, Settings())
    late: list[float] = []
    try:
        while time.time() < deadline:
            with count.get_lock():
                if count.value <= 0:
                    break
            batch = broker.fetch([QUEUE], BATCH, timeout=0.5)
            now = time.time()
            broker.ack(batch)
            late += [now - float(d.envelope.id.split("@")[1]) for d in batch if d.envelope]
            with count.get_lock():
                count.value -= len(batch)
    finally:
        broker.close()
        out.put(late)


def one(url: str, n: int, spread: float) -> dict[str, float]:
    client = redis.Redis.from_url(url)
    client.flushdb()
    ctx = multiprocessing.get_context("spawn")
    left, results = ctx.Value("q", n), ctx.Queue()
    first = time.time() + max(5.0, n / SEND_GUESS) + 3.0  # the consumers start meanwhile
    procs = [ctx.Process(target=consume, args=(url, left, first + spread + 120, results)) for _ in range(CONSUMERS)]
    for p in procs:
        p.start()
    producer = RedisBroker(url, Settings())
    sent_late = 0
    try:
        for i in range(SLICES):
            at = first + spread * i / SLICES
            size = n * (i + 1) // SLICES - n * i // SLICES
            sent_late += size if time.time() > at else 0
            producer.publish_many([Publication(QUEUE, _envelope(at), at) for _ in range(size)])
        late: list[float] = []
        for _ in procs:
            late += results.get(timeout=first + spread + 180 - time.time())
        for p in procs:
            p.join(10)
    finally:
        producer.close()
        client.flushdb()
        client.close()
    if len(late) != n:
        raise RuntimeError(f"expected {n} deliveries, got {len(late)}")
    row = {
        "size": float(n),
        "late_p50": measure.percentile(late, 50),
        "late_p99": measure.percentile(late, 99),
        "late_max": max(late),
        "over_1s": float(sum(1 for v in late if v > 1.0)),
        "sent_late": float(sent_late),
    }
    print(f"  {n:,}: " + ", ".join(f"{k} {v:,.3f}" for k, v in row.items()), file=sys.stderr, flush=True)
    return row


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.countdown_broker", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    parser.add_argument("--sizes", default="20000,100000,1000000")
    parser.add_argument("--spread", type=float, default=60.0)
    parser.add_argument("--out", type=Path, default=RESULTS_DIR)
    args = parser.parse_args(sys.argv[1:] if argv is None else argv)
    url = os.environ.get("BENCH_REDIS", "redis://127.0.0.1:6379").rstrip("/") + "/10"
    command = " ".join(sys.argv[1:] if argv is None else argv)
    notes = [
        f"BENCH_REDIS={os.environ.get('BENCH_REDIS', '(unset)')} python -m bench.countdown_broker {command}".rstrip(),
        f"load average at the start {', '.join(f'{v:.1f}' for v in os.getloadavg())}",
    ]
    rows = [one(url, int(n), args.spread) for n in args.sizes.split(",")]
    notes.append(f"load average at the end {', '.join(f'{v:.1f}' for v in os.getloadavg())}")
    lines = [
        f"| messages due over {args.spread:g} s, 2 consumers fetch + ack | lateness p50 s | p99 s | max s | "
        "> 1 s late | sent after due |",
        "|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {int(r['size']):,} | {r['late_p50']:.3f} | {r['late_p99']:.3f} | {r['late_max']:.3f} | "
            f"{int(r['over_1s']):,} | {int(r['sent_late']):,} |"
        )
    text = "\n".join([*lines, "", *(f"- {n}" for n in notes)]) + "\n"
    print(text)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "countdown_broker.md").write_text(text)
    (args.out / "countdown_broker.json").write_text(json.dumps({"rows": rows, "notes": notes}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
