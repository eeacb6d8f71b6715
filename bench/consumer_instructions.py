"""Instructions per task of one Redis consumer, as a prefork child runs it, under callgrind.

    cd /tmp && PYTHONPATH=<tree>:<checkout> python -m bench.consumer_instructions [--results]

One consumer (``taskq.worker.consumer.Consumer``, in one process, with the ``inspect active``
record and the prefork slot record written per task when the tree has them) fetches, runs
and acks no-op tasks queued on ``BENCH_REDIS`` (db 8; use a server of the bench's own), in
``valgrind --tool=callgrind``, twice: for --small and for --large tasks. The difference of
the two instruction counts over the difference of the task counts is what one task costs
the worker (fetch and decode, the runner, the records, the ack's arguments, redis-py), start-
up and imports left out. Instruction counts barely move with the machine's load, unlike CPU
time on a busy 2-core machine. Redis's own cost is not in it (bench/commandstats.py).

The flush waits for a whole batch (FLUSH_AFTER raised, FAST_TASK too): callgrind runs about
50 times slower, and the batches and flushes must stay those of a full-speed worker.
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
import time
from typing import Any

from bench.adapters.base import QUEUE
from bench.adapters.taskq import TaskqAdapter


def consume(k: int) -> None:
    """Run ``k`` queued tasks in one consumer set up as a prefork child, then return."""
    import importlib

    import taskq.worker.consumer as consumer_module
    import taskq.worker.runner as runner_module

    app = importlib.import_module("bench.adapters.taskq_app").app
    runner_module.FLUSH_AFTER = 10.0  # type: ignore[misc]
    consumer_module.FAST_TASK = 1.0  # type: ignore[misc]
    consumer = consumer_module.Consumer(app, [QUEUE], 1)
    try:  # a tree with the inspect-active and time-limit records writes them, as a child does
        from taskq.control.stats import SharedStats
        from taskq.worker.slots import ChildSlots

        consumer.stats, slots = SharedStats(4), ChildSlots(2)
        consumer.runner.alarm.hard_in_process = False

        def publish(task_id: str, limits: Any) -> None:  # as supervisor.py's child does
            hard = limits.hard or 0.0
            slots.publish_task(0, task_id, time.monotonic() + hard if hard else 0.0, hard)

        consumer.runner.on_task = publish
    except ImportError:
        pass
    handle, done = consumer.runner.handle, [0]

    def counted(delivery: Any) -> None:
        handle(delivery)
        done[0] += 1
        if done[0] >= k:
            consumer.stop_requested.set()  # the loop ends after this task (flush, give back)

    consumer.runner.handle = counted  # type: ignore[method-assign]
    consumer.run()


def instructions(k: int, results: bool) -> int:
    adapter = TaskqAdapter()
    try:
        adapter.reset()
        adapter.fill(k + 200, [QUEUE], results)  # more than k: the last fetch is a full batch too
    finally:
        adapter.redis.close()
    env = {**os.environ, "BENCH_RESULTS": "1" if results else "0", "BENCH_REDIS_URL": adapter.url}
    env["PYTHONHASHSEED"] = "0"  # the same dict layouts in every run: fewer instructions of noise
    with tempfile.TemporaryDirectory() as folder:
        out = os.path.join(folder, "callgrind.out")
        run = subprocess.run(
            ["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}", os.path.realpath(sys.executable),
             "-m", "bench.consumer_instructions", "--consume", str(k)],
            env=env, capture_output=True, text=True, check=True,
        )  # fmt: skip
    found = re.search(r"Collected : (\d+)", run.stderr)
    if found is None:
        raise RuntimeError(f"no instruction count from callgrind: {run.stderr[-2000:]}")
    return int(found.group(1))


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.consumer_instructions", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    parser.add_argument("--small", type=int, default=200)
    parser.add_argument("--large", type=int, default=1200)
    parser.add_argument("--results", action="store_true", help="store each task's result")
    parser.add_argument("--consume", type=int, help=argparse.SUPPRESS)  # the process callgrind runs
    args = parser.parse_args()
    if args.consume is not None:
        consume(args.consume)
        return 0
    import taskq

    small, large = instructions(args.small, args.results), instructions(args.large, args.results)
    per = (large - small) / (args.large - args.small)
    tree = os.path.dirname(os.path.dirname(os.path.abspath(taskq.__file__)))
    print(f"{tree}: {per:,.0f} instructions per task ({small:,} for {args.small}, {large:,} for {args.large})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
