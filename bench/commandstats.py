"""What each Redis command costs per call as a taskq backlog drains: ``python -m bench.commandstats [N ...]``.

For each N (default 20000 1000000): N no-op tasks are queued with ``delay_many``, the
server's ``INFO commandstats`` is reset, and 2 worker processes drain the queue. At the start
and at each tenth of the backlog the server's counters (calls and µs per command, CPU) and
the worker tree's CPU are read; printed per tenth: the drain rate, the Redis and worker CPU
per task and the commands that cost the most per task with their µs per call. A command
whose cost grows with the stream's length (or the pending list's) shows as µs per call that
differ between the deepest tenth and the last, or between sizes. Use a Redis server of the
bench's own (``BENCH_REDIS``): the counters are server-wide.
"""

from __future__ import annotations

import argparse
import itertools
import os
import sys
import time
from dataclasses import dataclass

from bench import measure
from bench.adapters.base import QUEUE
from bench.adapters.taskq import TaskqAdapter
from bench.monitoring_cost import Variant
from bench.plan import PROCESSES

TOP = 6  # commands shown per tenth


@dataclass
class Snapshot:
    at: float  # monotonic seconds
    left: int  # tasks not yet acknowledged
    commands: dict[str, tuple[int, int]]  # command -> (calls, µs) since the reset
    redis_cpu: float  # server CPU seconds
    worker_cpu: float  # worker tree CPU seconds


def snapshot(adapter: TaskqAdapter, left: int) -> Snapshot:
    stats = adapter.redis.info("commandstats")
    cpu = adapter.redis.info("cpu")
    return Snapshot(
        time.monotonic(),
        left,
        {name.removeprefix("cmdstat_"): (int(v["calls"]), int(v["usec"])) for name, v in stats.items()},
        float(cpu["used_cpu_user"]) + float(cpu["used_cpu_sys"]),
        measure.tree_cpu(adapter.workers.pids),
    )


def costs(a: Snapshot, b: Snapshot) -> dict[str, tuple[float, float]]:
    """Command -> (calls per task, µs per call) between two snapshots."""
    done = max(1, a.left - b.left)
    out = {}
    for name, (calls, usec) in b.commands.items():
        calls0, usec0 = a.commands.get(name, (0, 0))
        if calls > calls0:
            out[name] = ((calls - calls0) / done, (usec - usec0) / (calls - calls0))
    return out


def line(a: Snapshot, b: Snapshot) -> str:
    done = a.left - b.left
    top = sorted(costs(a, b).items(), key=lambda kv: -kv[1][0] * kv[1][1])[:TOP]
    return (
        f"  {a.left:>9,} -> {b.left:>9,}  {done / (b.at - a.at):>8,.0f}/s  "
        f"Redis {1e6 * (b.redis_cpu - a.redis_cpu) / done:5.1f} µs/task  "
        f"workers {1e6 * (b.worker_cpu - a.worker_cpu) / done:5.1f} µs/task  | "
        + "  ".join(f"{name} {per:.3f}/task {usec:.1f} µs" for name, (per, usec) in top)
    )


def run(adapter: TaskqAdapter, n: int) -> list[Snapshot]:
    adapter.reset()
    enqueue = n / measure.timed(lambda: adapter.fill(n))
    print(f"{n:,} queued at {enqueue:,.0f}/s", flush=True)
    snaps: list[Snapshot] = []

    def remaining() -> int:
        left = adapter.remaining([QUEUE])
        if left >= n:  # the start: the last poll that still sees every task
            snaps[:] = [snapshot(adapter, left)]
        elif left <= n - n * len(snaps) // 10 or left == 0:
            snaps.append(snapshot(adapter, left))
        return left

    adapter.redis.config_resetstat()
    adapter.start_workers(PROCESSES)
    try:
        rate = measure.drain_rate(remaining, n, 60 + n * 0.002, interval=0.002 if n <= 50_000 else 0.02)
    finally:
        adapter.stop_workers()
        adapter.reset()
    print(f"{n:,} drained at {rate:,.0f}/s; per tenth (calls per task, µs per call):")
    for a, b in itertools.pairwise(snaps):
        if a.left > b.left and b.at > a.at:
            print(line(a, b))
    print("whole drain:")
    for name, (per, usec) in sorted(costs(snaps[0], snaps[-1]).items(), key=lambda kv: -kv[1][0] * kv[1][1]):
        if per >= 0.001:
            print(f"  {name:24} {per:7.4f} calls/task  {usec:8.1f} µs/call  {per * usec:6.2f} µs/task")
    return snaps


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.commandstats", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    parser.add_argument("sizes", nargs="*", type=int, default=[20_000, 1_000_000])
    args = parser.parse_args()
    import taskq

    adapter = Variant(source=os.path.dirname(os.path.dirname(os.path.abspath(taskq.__file__))))
    try:
        for n in args.sizes:
            run(adapter, n)
    finally:
        adapter.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
