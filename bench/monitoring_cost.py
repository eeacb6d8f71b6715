"""What watching and steering cost a worker nobody watches: the drain row (no-op tasks,
``taskq worker -P prefork -c 2`` on Redis) side by side for

* ``before``: taskq from another source tree (``--base DIR``, e.g. ``git archive`` of the
  commit before a change), the same bench and task module;
* ``events off``: this checkout as it runs by default (no task events, no listener);
* ``-E, no listener`` (``--with-events``): task events on and nobody consuming them, here
  and in ``--base``.

    python -m bench.monitoring_cost [--tasks 20000] [--runs 5] [--base DIR] [--with-events] [--db N]

``--db`` picks another Redis database than the taskq adapter's (8), so that this bench does
not share (and flush) a database with another bench running at the same time.

Runs are interleaved (run 1 of each, then run 2 of each, the start rotated) so drift on a
shared machine hits all alike. Prints one markdown table: median (min-max) tasks/s.

    python -m bench.monitoring_cost --cpu [--tasks 20000] [--runs 6]

measures the same in one process, by CPU time, which a loaded machine disturbs far less
than a wall-clock drain: one consumer drains no-op tasks from the memory broker, without
and with what ``taskq worker`` gives it for remote control (the held-message record of
``inspect reserved`` and the steering state).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import threading
import time
from collections.abc import Sequence

from bench import measure
from bench.adapters.base import QUEUE, redis_url
from bench.adapters.taskq import DB, TaskqAdapter
from bench.plan import PROCESSES


class Variant(TaskqAdapter):
    """taskq's bench adapter with extra worker options, importing taskq from ``source``."""

    def __init__(self, extra: Sequence[str] = (), source: str | None = None) -> None:
        super().__init__()
        self.extra = list(extra)
        self.source = source

    def worker_commands(self, processes: int, queues: Sequence[str]) -> list[list[str]]:
        command = super().worker_commands(processes, queues)[0]
        if self.source is not None:  # taskq from there first; bench.* still from this checkout
            start = f"import sys; sys.path.insert(0, {self.source!r}); from taskq.cli import main; main()"
            command = [sys.executable, "-c", start, *command[3:]]
        return [command + self.extra]


def drain(adapter: Variant, n: int, timeout: float) -> float:
    adapter.reset()
    adapter.fill(n, [QUEUE], False)
    adapter.start_workers(PROCESSES)
    try:
        return measure.drain_rate(lambda: adapter.remaining([QUEUE]), n, timeout)
    finally:
        adapter.stop_workers()


def consumer_cpu_rate(with_control: bool, n: int, run: int) -> float:
    """Tasks per CPU second of one consumer draining ``n`` no-op tasks from memory://."""
    from taskq import TaskQ
    from taskq.control.stats import SharedStats
    from taskq.control.steering import Steering
    from taskq.worker.consumer import Consumer

    app = TaskQ(f"cost{run}", broker=f"memory://cost{run}", task_ignore_result=True)
    noop = app.task(name="noop")(lambda: None)
    noop.delay_many([()] * n, queue=QUEUE)
    consumer = Consumer(app, [QUEUE], 1)
    if with_control:
        consumer.stats, consumer.steering = SharedStats(20), Steering(2, [QUEUE])
    thread = threading.Thread(target=consumer.run)
    start = time.process_time()
    thread.start()
    while app.broker.queue_length(QUEUE) > 0 or consumer._pending:
        time.sleep(0.01)
    took = time.process_time() - start
    consumer.warm_stop()
    thread.join()
    app.close()
    return n / took


def cpu_table(n: int, runs: int) -> None:
    rates: dict[bool, list[float]] = {False: [], True: []}
    for run in range(runs):
        for with_control in (False, True) if run % 2 == 0 else (True, False):
            rates[with_control].append(consumer_cpu_rate(with_control, n, run * 2 + with_control))
    cells = [f"{statistics.median(r):,.0f} ({min(r):,.0f}-{max(r):,.0f})" for r in rates.values()]
    print("| row | unit | without remote control | with remote control |")
    print("|---|---|---|---|")
    print(f"| one consumer, memory://, {n:,} no-op tasks, {runs} runs | tasks per CPU second | {' | '.join(cells)} |")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--tasks", type=int, default=20_000)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--base", default=None, help="a taskq source tree to compare with (its taskq/ package)")
    parser.add_argument("--with-events", action="store_true", help="also rows with -E (task events on)")
    parser.add_argument("--cpu", action="store_true", help="the in-process CPU-time measurement instead")
    parser.add_argument("--db", type=int, default=DB, help=f"the Redis database to use (default {DB})")
    args = parser.parse_args()
    if not 0 < args.db < 16:
        parser.error("--db must be 1 to 15 (db 0 belongs to the test suites; the bench flushes its database)")
    Variant.db = args.db
    os.environ["BENCH_REDIS_URL"] = redis_url(args.db)  # read by taskq_app here and in the workers
    if args.cpu:
        cpu_table(args.tasks, args.runs)
        return
    variants: dict[str, Variant] = {}
    if args.base:
        variants["before"] = Variant(source=args.base)
    variants["events off"] = Variant()
    if args.base and args.with_events:
        variants["before, -E"] = Variant(["-E"], source=args.base)
    if args.with_events:
        variants["-E, no listener"] = Variant(["-E"])
    rates: dict[str, list[float]] = {name: [] for name in variants}
    names = list(variants)
    try:
        for run in range(args.runs):
            for name in names[run % len(names):] + names[: run % len(names)]:
                rates[name].append(drain(variants[name], args.tasks, 180.0))
                print(f"run {run + 1} {name}: {rates[name][-1]:,.0f}/s", file=sys.stderr, flush=True)
    finally:
        for adapter in variants.values():
            adapter.close()
    cells = [f"{measure.median(r):,.0f} ({min(r):,.0f}-{max(r):,.0f})" for r in rates.values()]
    print("| row | unit | " + " | ".join(variants) + " |")
    print("|" + "---|" * (len(variants) + 2))
    print(f"| drain, {PROCESSES} processes, {args.tasks:,} no-op tasks, {args.runs} runs | tasks/s | "
          + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
