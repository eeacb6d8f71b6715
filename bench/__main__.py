"""``python -m bench [--quick] [--only LIB ...] [--runs N] [--out DIR]``."""

from __future__ import annotations

import argparse
import dataclasses
import os
import platform
import sys
import time
from pathlib import Path

from bench import adapters, report
from bench.adapters.base import Adapter
from bench.plan import FULL, PROCESSES, QUICK, Plan
from bench.results import Results
from bench.runner import Runner

RESULTS_DIR = Path(__file__).resolve().parent / "results"
CPUS = os.cpu_count() or 1


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="small counts, one run each; prints the table only")
    parser.add_argument(
        "--only",
        action="append",
        choices=list(adapters.ADAPTERS),
        metavar="LIB",
        help=f"run only these libraries (repeatable): {', '.join(adapters.ADAPTERS)}",
    )
    parser.add_argument("--runs", type=int, help="runs of each headline row (default: 1 quick, 5 full)")
    parser.add_argument(
        "--out",
        type=Path,
        help=f"directory for table and chart (default {RESULTS_DIR}; the quick run writes only when given)",
    )
    return parser.parse_args(argv)


def log(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    plan = QUICK if args.quick else FULL
    if args.runs:
        plan = dataclasses.replace(plan, runs=args.runs)
    names = args.only or list(adapters.ADAPTERS)
    results = Results(libraries=names)
    loaded: dict[str, Adapter] = {}
    for name in names:
        adapter = adapters.load(name)
        if isinstance(adapter, str):
            results.status[name] = f"skipped: {adapter}"
            log(f"{name}: skipped: {adapter}")
        else:
            loaded[name] = adapter
            results.status[name] = adapter.version()
    describe(results, loaded, plan, args.quick)
    started = time.monotonic()
    log(f"load average at the start: {', '.join(f'{v:.1f}' for v in os.getloadavg())} ({CPUS} CPUs)")
    try:
        Runner(plan, loaded, results, log).run()
    finally:
        for adapter in loaded.values():
            adapter.close()
    load = ", ".join(f"{v:.1f}" for v in os.getloadavg())
    results.notes.append(f"wall time {time.monotonic() - started:.0f}s; load average at the end {load} ({CPUS} CPUs)")
    out = args.out or (None if args.quick else RESULTS_DIR)
    if out:
        report.publish(results, out, "results")
        report.chart(results, out / "results.png")
        log(f"wrote results.md, results.json and results.png in {out}")
    else:
        print(report.markdown(results))
    return 0


def describe(results: Results, loaded: dict[str, Adapter], plan: Plan, quick: bool) -> None:
    results.notes.append(
        f"{'quick' if quick else 'full'} run, {plan.runs} run(s) per headline row, interleaved; "
        f"Python {platform.python_version()}, {platform.machine()}, one shared local Redis"
    )
    results.notes.append(
        f"enqueue: {plan.enqueue_one:,} single calls, {plan.enqueue_bulk:,} through the bulk API; "
        f"drain: {plan.drain:,} queued no-op tasks, {PROCESSES} worker processes"
    )
    slow = [name for name, a in loaded.items() if a.slow_drain]
    if slow:
        results.notes.append(f"drained {plan.drain_slow:,} tasks (it drains below 500/s): {', '.join(slow)}")
    for name, adapter in loaded.items():
        bulk = adapter.bulk_api or "none"
        results.notes.append(f"{name}: bulk API {bulk}; workers: {adapter.worker_note}")


if __name__ == "__main__":
    sys.exit(main())
