"""The asyncio pool on its peers' home ground: drain of no-op ``async def`` tasks on Redis,
one worker process each: taskq ``-P asyncio``, Taskiq (``--workers 1``), arq (one process).

    python -m bench.async_drain [--tasks 3000] [--runs 3] [--concurrency 10]

Taskiq and arq run from virtualenvs of their own, made on first use under bench/.venvs/
(bench/venvs.py): their redis-py pins differ from taskq's. The libraries take turns in each
round (load drifts hit every one), and the row gives each one's median and range of the
rounds in tasks/s, and taskq's median over the best peer's. Written to bench/results/async.md.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from bench import measure
from bench.adapters.base import QUEUE, Adapter
from bench.adapters.taskq import TaskqAdapter
from bench.venvs import IN_VENV, VenvError

PEERS = ("taskiq", "arq")
TASKQ = "taskq -P asyncio"
OUT = Path(__file__).resolve().parent / "results" / "async.md"


class TaskqAsyncAdapter(TaskqAdapter):
    """taskq with ``async def`` no-ops on ``-P asyncio -c N``, one process."""

    concurrency = 10

    def enqueue_bulk(self, n: int, queues: Sequence[str] = (QUEUE,), with_results: bool = False) -> None:
        self.tasks.anoop.delay_many([()] * n, queue=queues[0])

    def worker_commands(self, processes: int, queues: Sequence[str]) -> list[list[str]]:
        return [[sys.executable, "-m", "taskq", "worker", "-A", "bench.adapters.taskq_app:app", "-Q", ",".join(queues),
                 "-c", str(self.concurrency), "-P", "asyncio", "-l", "warning"]]  # fmt: skip


def drain(adapter: Adapter, n: int, timeout: float) -> float:
    adapter.reset()
    adapter.fill(n)
    adapter.start_workers(1)
    try:
        return measure.drain_rate(adapter.remaining, n, timeout)
    finally:
        adapter.stop_workers()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--tasks", type=int, default=3000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--concurrency", type=int, default=10)
    args = parser.parse_args()
    TaskqAsyncAdapter.concurrency = args.concurrency
    adapters: dict[str, Adapter] = {TASKQ: TaskqAsyncAdapter()}
    for name in PEERS:
        try:
            adapters[name] = IN_VENV[name]()
        except VenvError as exc:
            print(f"{name}: skipped ({exc})")
    rates: dict[str, list[float]] = {name: [] for name in adapters}
    try:
        for _ in range(args.runs):
            for name, adapter in adapters.items():  # interleaved: load drifts hit every library
                rates[name].append(drain(adapter, args.tasks, 120.0))
    finally:
        for adapter in adapters.values():
            adapter.close()
    medians = {name: measure.median(r) for name, r in rates.items()}
    cells = [f"{medians[name]:,.0f} ({min(r):,.0f}-{max(r):,.0f})" for name, r in rates.items()]
    peers = [m for name, m in medians.items() if name in PEERS]
    ratio = f"{medians[TASKQ] / max(peers):.2f}x" if peers else "-"
    versions = [adapter.version() or name for name, adapter in adapters.items()]
    header = "| row | unit | " + " | ".join(adapters) + " | taskq vs best peer |"
    title = f"drain, 1 process, no-op async def tasks ({args.tasks}, -c {args.concurrency}, {args.runs} rounds)"
    row = f"| {title} | tasks/s, median (min-max) | " + " | ".join(cells) + f" | {ratio} |"
    status = "| versions | | " + " | ".join(versions) + " | |"
    table = "\n".join([header, "|" + "---|" * (len(adapters) + 3), status, row]) + "\n"
    print(table)
    OUT.write_text(table)


if __name__ == "__main__":
    main()
