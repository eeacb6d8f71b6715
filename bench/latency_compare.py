"""The idle row's latency of taskq from one source tree, with what each task cost Redis and the
worker tree: run it once per tree, alternating (A B A B), to compare commits.

    python -m bench.latency_compare [--tasks 1000] [--runs 3] [--probe]

As bench/runner.py's idle row: a prefork worker (-c 2) on one queue, warm-up tasks, a settle,
then ``--tasks`` stamp tasks sent LATENCY_GAP apart; latency is enqueue -> task start. Beside
the percentiles (which a loaded machine moves), per task: the Redis commands by name (the
server's INFO commandstats, reset after the settle; the producer's XADD and the stamp task's
RPUSH included), and the CPU the worker tree used. Those two vary little with the load, and the
load average is printed with each run. taskq comes from PYTHONPATH's first tree, for this
process (the producer) and the workers; run it from a directory without a ``taskq`` package,
e.g. ``cd /tmp && PYTHONPATH=/tmp/old:/path/to/checkout python -m bench.latency_compare``.
Use a Redis server of the bench's own (``BENCH_REDIS``): the counters are server-wide.

``--probe`` (bench/latency_probe.py in the workers): also, from the blocking read that brought
a task to its start, the CPU time of that thread (percentiles) and how many task starts waited
for a Redis command of their own process on the way (a round trip each).
"""

from __future__ import annotations

import argparse
import os
import time

from bench import latency_probe, measure
from bench.adapters.base import LATENCY_KEY
from bench.monitoring_cost import Variant
from bench.plan import LATENCY_GAP, PROCESSES

WARMUP = 4 * PROCESSES  # as bench/runner.py's idle row
SETTLE = 1.0


def commands(adapter: Variant) -> dict[str, int]:
    stats = adapter.redis.info("commandstats")
    return {name.removeprefix("cmdstat_"): int(v["calls"]) for name, v in stats.items()}


def latency(adapter: Variant, n: int) -> str:
    adapter.reset()
    adapter.start_workers(PROCESSES)
    try:
        for _ in range(WARMUP):
            adapter.enqueue_stamp()
        measure.wait_until(lambda: int(adapter.redis.llen(LATENCY_KEY)) >= WARMUP, 60.0, "warm-up tasks")
        time.sleep(SETTLE)
        adapter.workers.check_alive()
        adapter.redis.delete(LATENCY_KEY, latency_probe.CPU_KEY, latency_probe.SENT_KEY)
        adapter.redis.config_resetstat()
        cpu, started = measure.tree_cpu(adapter.workers.pids), time.monotonic()
        next_send = time.perf_counter()
        for _ in range(n):
            adapter.enqueue_stamp()
            next_send += LATENCY_GAP
            time.sleep(max(0.0, next_send - time.perf_counter()))
        measure.wait_until(lambda: int(adapter.redis.llen(LATENCY_KEY)) >= n, 60.0, "stamp tasks")
        took, cpu = time.monotonic() - started, measure.tree_cpu(adapter.workers.pids) - cpu
        calls = commands(adapter)
        latencies = [float(v) * 1000 for v in adapter.redis.lrange(LATENCY_KEY, 0, -1)]
        probe = probed(adapter)
    finally:
        adapter.stop_workers()
    # What an idle worker sends anyway over the same time (blocking reads that time out) is
    # in the counts too: at LATENCY_GAP apart it is a small share.
    per = " ".join(f"{name} {count / n:.2f}" for name, count in sorted(calls.items(), key=lambda kv: -kv[1]))
    p50, p95, p99 = (measure.percentile(latencies, q) for q in (50, 95, 99))
    return (
        f"p50 {p50:.3f} p95 {p95:.3f} p99 {p99:.3f} ms; load {os.getloadavg()[0]:.2f}; "
        f"worker CPU {cpu * 1e6 / n:.0f} µs/task; {took:.1f} s; {probe}"
        f"commands/task {sum(calls.values()) / n:.2f}: {per}"
    )


def probed(adapter: Variant) -> str:
    """What bench/latency_probe.py recorded, if it ran."""
    cpu = [float(v) * 1e6 for v in adapter.redis.lrange(latency_probe.CPU_KEY, 0, -1)]
    if not cpu:
        return ""
    sent = [int(v) for v in adapter.redis.lrange(latency_probe.SENT_KEY, 0, -1)]
    p50, p95, p99 = (measure.percentile(cpu, q) for q in (50, 95, 99))
    waited = sum(1 for s in sent if s)
    return (
        f"read->start CPU p50 {p50:.0f} p95 {p95:.0f} p99 {p99:.0f} µs, "
        f"{waited} of {len(sent)} starts waited for a command of their own; "
    )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--tasks", type=int, default=1000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--probe", action="store_true", help="bench/latency_probe.py in the workers")
    args = parser.parse_args()
    if args.probe:
        os.environ["BENCH_LATENCY_PROBE"] = "1"  # the workers inherit it
    import taskq

    source = os.path.dirname(os.path.dirname(os.path.abspath(taskq.__file__)))
    adapter = Variant(source=source)
    try:
        for run in range(args.runs):
            print(f"{source} run {run + 1}: {latency(adapter, args.tasks)}", flush=True)
    finally:
        adapter.close()


if __name__ == "__main__":
    main()
