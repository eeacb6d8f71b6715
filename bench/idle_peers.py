"""The bench's idle row alone (bench/runner.py ``idle``: warm-up tasks, a settle, the
worker tree's PSS) for a few libraries, interleaved run by run, so that they are compared in
the same minute on the same machine: PSS splits each page with every process that maps it,
other Python processes included, so it moves with what else runs.

    python -m bench.idle_peers [--only taskq --only rq ...] [--runs 3]

taskq is this checkout's (the workers' PYTHONPATH starts with it).
"""

from __future__ import annotations

import argparse
import time

from bench import adapters, measure
from bench.adapters.base import LATENCY_KEY, Adapter
from bench.plan import PROCESSES
from bench.runner import SETTLE

DEFAULT = ["taskq", "rq", "dramatiq", "huey"]


def idle_pss(adapter: Adapter) -> float:
    """MB of PSS of the worker tree after the idle row's warm-up and settle."""
    adapter.reset()
    adapter.start_workers(PROCESSES)
    try:
        warmup = 4 * PROCESSES
        for _ in range(warmup):
            adapter.enqueue_stamp()
        measure.wait_until(lambda: int(adapter.redis.llen(LATENCY_KEY)) >= warmup, 60.0, "warm-up tasks")
        time.sleep(SETTLE)
        adapter.workers.check_alive()
        return measure.tree_pss(adapter.workers.pids) / 1e6
    finally:
        adapter.stop_workers()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--only", action="append", choices=list(adapters.ADAPTERS), metavar="LIB")
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    loaded: dict[str, Adapter] = {}
    for name in args.only or DEFAULT:
        adapter = adapters.load(name)
        if isinstance(adapter, str):
            print(f"{name}: skipped: {adapter}")
        else:
            loaded[name] = adapter
    sizes: dict[str, list[float]] = {name: [] for name in loaded}
    try:
        for _ in range(args.runs):
            for name, adapter in loaded.items():
                sizes[name].append(idle_pss(adapter))
    finally:
        for adapter in loaded.values():
            adapter.close()
    for name, values in sizes.items():
        runs = ", ".join(f"{v:.1f}" for v in values)
        print(f"{name}: idle PSS {measure.median(values):.1f} MB ({min(values):.1f}-{max(values):.1f}; runs {runs})")


if __name__ == "__main__":
    main()
