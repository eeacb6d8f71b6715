"""Big arguments: MB/s through enqueue and a drain with results, beside raw redis-py SET/GET
of the same bytes, and the worker's memory.

    python -m bench.payloads [--sizes 1024,102400,1048576] [--megabytes 300] [--max-tasks 100000] [--runs 3] [--out DIR]

For each size, ``--megabytes`` worth of tasks (at least 20, at most ``--max-tasks``: small
arguments measure per-task cost, not bytes), interleaved with the raw rows:

* taskq enqueue: ``payload.delay(data)`` once per task, ``data`` a string of that many
  ASCII characters (one producer); MB/s of argument bytes.
* taskq drain: ``taskq worker -c 2 -P prefork`` with results stored (the task returns
  ``len(data)``); the clock as in ``python -m bench``; MB/s of argument bytes. The worker
  tree's peak RSS is sampled every 100 ms.
* raw: one redis-py client, ``SET`` of each value (the str, one call each), then ``GET`` of
  each (decoded to a str) with its result stored (a SET of its length, pipelined 100 at a
  time): MB/s of each, and of the round trip (bytes / (SET time + GET time)), which is
  compared with taskq's bytes / (enqueue time + drain time). Like for like: the same str in
  and out, the bytes written once and read once, a result per value; taskq's drain has two
  processes, the raw loop one client.

Database 5 of ``BENCH_REDIS`` (flushed before and after). Writes ``payloads.{md,json}``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import redis

from bench import measure
from bench.adapters.base import redis_url
from bench.measure import spread
from bench.payload_app import DB
from bench.procs import WorkerGroup

RESULTS_DIR = Path(__file__).resolve().parent / "results"
PROCESSES = 2
TIMEOUT = 300.0
MB = 1e6
RSS_EVERY = 0.1  # seconds between samples of the worker tree's RSS
RESULTS_EVERY = 100  # raw loop: results written per pipeline


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.payloads", description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", default="1024,102400,1048576", help="argument sizes in bytes, comma-separated")
    # 300 MB: a sample of 100 MB moved 1 MB values in about 0.1 s, where the raw loop's first
    # page faults and the drain clock's polls weighed (raw GET 655-1,850 MB/s between runs).
    parser.add_argument("--megabytes", type=float, default=300.0, help="argument bytes moved per sample")
    parser.add_argument("--max-tasks", type=int, default=100_000, help="at most this many values per sample")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--out", type=Path, default=RESULTS_DIR)
    return parser.parse_args(argv)


def log(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def value(size: int) -> str:
    """An incompressible-looking ASCII string of ``size`` characters."""
    return (os.urandom(size // 2 + 1).hex())[:size]


def raw_round(client: redis.Redis, data: str, n: int) -> tuple[float, float]:
    """Seconds for n SETs of ``data``, then for n GETs with results, one call each.

    What taskq is given and gives back, the raw loop is too: a str goes in (redis-py encodes
    it, as taskq serializes it), a str comes out of each GET (the task receives one), and
    each value's result (its length) is stored, in pipelines of RESULTS_EVERY (taskq's
    worker writes finished tasks' results in batches too)."""
    client.flushdb()
    started = time.perf_counter()
    for i in range(n):
        client.set(f"raw:{i}", data)
    set_seconds = time.perf_counter() - started
    started = time.perf_counter()
    results = client.pipeline(transaction=False)
    for i in range(n):
        value = (client.get(f"raw:{i}") or b"").decode()  # type: ignore[union-attr]
        if len(value) != len(data):
            raise RuntimeError("raw GET returned other bytes")
        results.set(f"raw-result:{i}", len(value))
        if len(results) >= RESULTS_EVERY or i == n - 1:
            results.execute()
    get_seconds = time.perf_counter() - started
    client.flushdb()
    return set_seconds, get_seconds


def taskq_round(client: redis.Redis, data: str, n: int) -> tuple[float, float, float]:
    """Seconds to enqueue n tasks, seconds to drain them with results, peak worker RSS (bytes)."""
    from bench.payload_app import app, payload

    client.flushdb()
    started = time.perf_counter()
    for _ in range(n):
        payload.delay(data)
    enqueue_seconds = time.perf_counter() - started
    workers = WorkerGroup("taskq-payloads", stop_grace=10.0)
    command = [sys.executable, "-m", "taskq", "worker", "-A", "bench.payload_app:app", "-Q", "payloads",
               "-c", str(PROCESSES), "-P", "prefork", "-l", "warning"]  # fmt: skip
    workers.start([command], {"BENCH_REDIS_URL": redis_url(DB)})
    peak, sampled = 0, 0.0

    def remaining() -> int:
        nonlocal peak, sampled
        if time.monotonic() - sampled > RSS_EVERY:  # reading a process tree costs CPU the workers need
            peak, sampled = max(peak, measure.tree_rss(workers.pids)), time.monotonic()
        return app.broker.queue_length("payloads")

    try:
        rate = measure.drain_rate(remaining, n, TIMEOUT, interval=0.005)
    except measure.BenchTimeout:
        workers.check_alive()
        raise
    finally:
        workers.stop()
    stored = sum(1 for _ in client.scan_iter(match="celery-task-meta-*", count=1000))
    if stored != n:
        raise RuntimeError(f"expected {n} stored results, found {stored}")
    client.flushdb()
    return enqueue_seconds, n / rate, peak


def main(argv: list[str] | None = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    client = redis.Redis.from_url(redis_url(DB))
    sizes = [int(s) for s in args.sizes.split(",")]
    rows: dict[str, dict[str, list[float]]] = {}

    def add(size: int, key: str, number: float) -> None:
        rows.setdefault(str(size), {}).setdefault(key, []).append(number)
        log(f"  {size:>9,} B {key:18} {number:,.1f}")

    try:
        for run in range(args.runs):
            for size in sizes:
                n = max(20, min(args.max_tasks, int(args.megabytes * MB / size)))
                data = value(size)
                moved = n * size / MB
                order = ("raw", "taskq") if run % 2 == 0 else ("taskq", "raw")  # interleaved
                for which in order:
                    if which == "raw":
                        set_s, get_s = raw_round(client, data, n)
                        add(size, "raw_set", moved / set_s)
                        add(size, "raw_get", moved / get_s)
                        add(size, "raw_round", moved / (set_s + get_s))
                    else:
                        enqueue_s, drain_s, peak = taskq_round(client, data, n)
                        add(size, "taskq_enqueue", moved / enqueue_s)
                        add(size, "taskq_drain", moved / drain_s)
                        add(size, "taskq_round", moved / (enqueue_s + drain_s))
                        add(size, "taskq_rss_mb", peak / MB)
    finally:
        client.flushdb()
        client.close()
    table = markdown(rows, args)
    print(table)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "payloads.md").write_text(table)
    (args.out / "payloads.json").write_text(json.dumps(rows, indent=1))
    return 0


def ratio(r: dict[str, list[float]], taskq: str, raw: str) -> str:
    """taskq's figure as a % of the raw one, taken within each run (the two ran back to back:
    the load of a shared machine drifts between runs more than between neighbours)."""
    return spread([100 * t / w for t, w in zip(r.get(taskq, []), r.get(raw, []), strict=False) if w])


def markdown(rows: dict[str, dict[str, list[float]]], args: argparse.Namespace) -> str:
    lines = [
        "| argument | taskq enqueue MB/s | raw SET MB/s | enqueue % of raw | taskq drain (results) MB/s "
        "| raw GET (results) MB/s | drain % of raw | taskq round MB/s | raw round MB/s | round % of raw "
        "| worker tree peak RSS MB |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for size, r in rows.items():
        lines.append(
            f"| {int(size):,} B | {spread(r.get('taskq_enqueue', []))} | {spread(r.get('raw_set', []))} "
            f"| {ratio(r, 'taskq_enqueue', 'raw_set')} | {spread(r.get('taskq_drain', []))} "
            f"| {spread(r.get('raw_get', []))} | {ratio(r, 'taskq_drain', 'raw_get')} "
            f"| {spread(r.get('taskq_round', []))} | {spread(r.get('raw_round', []))} "
            f"| {ratio(r, 'taskq_round', 'raw_round')} | {spread(r.get('taskq_rss_mb', []))} |"
        )
    lines += [
        "",
        f"Cells: median (min-max) over {args.runs} interleaved runs; {args.megabytes:g} MB of arguments per sample "
        f"(at least 20 values, at most {args.max_tasks:,}); taskq: one producer, "
        f"`taskq worker -c {PROCESSES} -P prefork`, results stored; "
        "raw: one redis-py client, one SET then one GET per value (str in, str out, each length stored as a "
        "result, 100 per pipeline). Round: bytes / (enqueue + drain) against bytes / (SET + GET). "
        "% of raw: the ratio within each run, then its median (min-max). `python -m bench.payloads`",
    ]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.exit(main())
