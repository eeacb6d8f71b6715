"""CPU of the worker's per-task path alone: ``python -m bench.runner_cpu [-n N] [--rounds R]``.

Runs ``TaskRunner.handle`` (then ``flush``) over N no-op deliveries already fetched from an
in-memory broker, with what a prefork child of ``taskq worker`` has on every task: the
``inspect active`` statistics record and the supervisor's slot record (time limit,
terminate). No network and no other process, so the figure (process CPU per task, the
best and median of R rounds) barely moves with the machine's load: run it once per checkout
(``PYTHONPATH=<checkout>``) to compare them.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
import uuid

from taskq import TaskQ
from taskq.control.stats import SharedStats
from taskq.worker.runner import TaskRunner
from taskq.worker.slots import ChildSlots
from taskq.worker.timelimits import Limits


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.runner_cpu", description=__doc__)
    parser.add_argument("-n", type=int, default=10_000, help="deliveries per round (default 10,000)")
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    name = uuid.uuid4().hex
    app = TaskQ("runner-cpu", broker=f"memory://{name}", backend=f"memory://{name}", task_ignore_result=True)

    @app.task(name="bench.runner_cpu.noop")
    def noop() -> None:
        return None

    stats, slots = SharedStats(4), ChildSlots(1)
    runner = TaskRunner(app, app.broker)
    if hasattr(stats, "install"):  # a checkout before 2026-12-06 wrote the record through signals
        stats.install()
    else:
        runner.stats = stats

    def publish(task_id: str, limits: Limits) -> None:  # as supervisor.py's child does
        hard = limits.hard or 0.0
        slots.publish_task(0, task_id, time.monotonic() + hard if hard else 0.0, hard)

    runner.on_task = publish
    figures = []
    for _ in range(args.rounds):
        noop.delay_many([()] * args.n)
        batch = []
        while len(batch) < args.n:
            batch += app.broker.fetch([app.conf.task_default_queue], args.n, 0.1)
        started = time.process_time()
        for delivery in batch:
            runner.handle(delivery)
        runner.flush()
        figures.append(1e6 * (time.process_time() - started) / args.n)
    print(f"runner CPU per task: best {min(figures):.2f} us, median {statistics.median(figures):.2f} us "
          f"({args.rounds} rounds of {args.n:,})")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
