"""The idle tree's memory, or the drain's CPU per task, of taskq from one source tree: run
it once per tree, alternating, to compare commits (e.g. ``git archive`` of one into /tmp).

    python -m bench.tree_compare idle|drain [--tasks 20000] [--runs 3] [--results]

taskq is imported from PYTHONPATH's first tree, by this process (the producer: a tree's
own message format) and by the workers (bench/monitoring_cost.py's ``--base`` start).
Run it from a directory without a ``taskq`` package (not the checkout), e.g.

    cd /tmp && PYTHONPATH=/tmp/old:/path/to/checkout python -m bench.tree_compare idle

``idle``: as the bench's idle row (bench/runner.py): warm-up tasks, a settle, then RSS and
PSS summed over the tree, and RSS, PSS and USS (private) per process. ``drain``: the drain row's no-op drain (prefork
-c 2, Redis), with the CPU seconds the worker tree used from the last poll that saw every
task queued to the first that saw none, per task and per process: on a loaded machine CPU
per task varies far less than the rate. Beside it, the Redis server's own CPU per task over
the same span (``INFO cpu``: server-wide, so use a server of the bench's own, ``BENCH_REDIS``).
``--results``: the drain with results stored (the bench's "results stored" row).
"""

from __future__ import annotations

import argparse
import os
import time
from collections.abc import Sequence

import psutil

from bench import measure
from bench.adapters.base import LATENCY_KEY, QUEUE
from bench.monitoring_cost import Variant
from bench.plan import PROCESSES

WARMUP = 8
SETTLE = 1.0  # as bench/runner.py's idle row
POLL = 0.002


def tree(pids: Sequence[int]) -> list[psutil.Process]:
    root = psutil.Process(pids[0])
    return [root, *root.children(recursive=True)]


def idle(adapter: Variant) -> str:
    adapter.reset()
    adapter.start_workers(PROCESSES)
    try:
        for _ in range(WARMUP):
            adapter.enqueue_stamp()

        def warm() -> bool:
            adapter.workers.check_alive()
            return int(adapter.redis.llen(LATENCY_KEY)) >= WARMUP

        measure.wait_until(warm, 60.0, "warm-up tasks")
        time.sleep(SETTLE)
        sizes = [proc.memory_full_info() for proc in tree(adapter.workers.pids)]
    finally:
        adapter.stop_workers()
    per = ", ".join(f"{m.rss / 1e6:.1f}/{m.pss / 1e6:.1f}/{m.uss / 1e6:.1f}" for m in sizes)
    return (
        f"{len(sizes)} processes, RSS {sum(m.rss for m in sizes) / 1e6:.0f} MB, "
        f"PSS {sum(m.pss for m in sizes) / 1e6:.0f} MB (RSS/PSS/USS per process: {per})"
    )


def redis_cpu(adapter: Variant) -> float:
    """The Redis server's CPU seconds so far (user + system)."""
    cpu = adapter.redis.info("cpu")
    return float(cpu["used_cpu_user"]) + float(cpu["used_cpu_sys"])


def drain(adapter: Variant, n: int, results: bool) -> str:
    adapter.reset()
    adapter.fill(n, [QUEUE], results)
    adapter.start_workers(PROCESSES, results)
    try:
        procs, before, started, server = tree(adapter.workers.pids), [0.0], time.perf_counter(), 0.0
        left = adapter.remaining([QUEUE])
        while left >= n:  # the tree is read again each poll: the children start meanwhile
            procs = tree(adapter.workers.pids)
            before, started = [sum(p.cpu_times()[:2]) for p in procs], time.perf_counter()
            server = redis_cpu(adapter)
            time.sleep(POLL)
            left = adapter.remaining([QUEUE])
        while left > 0:
            time.sleep(POLL)
            left = adapter.remaining([QUEUE])
        took = time.perf_counter() - started
        used = [(sum(p.cpu_times()[:2]) - b) * 1e6 / n for p, b in zip(procs, before, strict=True)]
        server = (redis_cpu(adapter) - server) * 1e6 / n
    finally:
        adapter.stop_workers()
    per = ", ".join(f"{u:.1f}" for u in used)
    return (
        f"{n / took:,.0f} tasks/s, {sum(used):.1f} µs CPU per task (per process: {per}), "
        f"Redis {server:.1f} µs, total {sum(used) + server:.1f} µs"
    )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("what", choices=["idle", "drain"])
    parser.add_argument("--tasks", type=int, default=20_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--results", action="store_true", help="drain: store each task's result")
    args = parser.parse_args()
    import taskq

    source = os.path.dirname(os.path.dirname(os.path.abspath(taskq.__file__)))
    adapter = Variant(source=source)
    try:
        for run in range(args.runs):
            result = idle(adapter) if args.what == "idle" else drain(adapter, args.tasks, args.results)
            print(f"{source} run {run + 1}: {result}", flush=True)
    finally:
        adapter.close()


if __name__ == "__main__":
    main()
