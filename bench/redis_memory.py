"""Redis memory per queued task and per stored result, taskq beside its peers.

    python -m bench.redis_memory [--count 100000] [--results 10000] [--runs 3] [--only LIB ...] [--out DIR]

Queued tasks: the main harness's memory row (bench.runner ``Runner.memory``: ``--count``
no-argument tasks queued through the library's fastest enqueue, INFO used_memory after minus
before, and the sum of MEMORY USAGE over the library's database), repeated ``--runs`` times,
interleaved across libraries. Stored results (taskq and Celery, the two that write Celery's
result format): ``--results`` tasks drained by 2 worker processes with results on, then the
sum of MEMORY USAGE of the ``celery-task-meta-*`` keys over the count.

Writes ``redis_memory.{md,json}`` in ``--out`` (default bench/results).
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from pathlib import Path

from bench import adapters, measure, report
from bench.__main__ import RESULTS_DIR
from bench.adapters.base import QUEUE, Adapter
from bench.plan import FULL, PROCESSES
from bench.results import Results
from bench.runner import Runner, _usage

RESULT_LIBRARIES = ("taskq", "celery")
RESULT_PATTERN = "*celery-task-meta-*"


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.redis_memory", description=__doc__.split("\n")[0])
    parser.add_argument("--count", type=int, default=100_000, help="tasks queued per memory sample")
    parser.add_argument("--results", type=int, default=10_000, help="tasks run with results stored (0: skip)")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--only", action="append", choices=list(adapters.ADAPTERS), metavar="LIB")
    parser.add_argument("--out", type=Path, default=RESULTS_DIR)
    return parser.parse_args(argv)


def log(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def result_bytes(adapter: Adapter, n: int, timeout: float) -> float:
    """Bytes of Redis memory per stored result, after ``n`` tasks ran with results on."""
    adapter.reset()
    if adapter.name == "celery":
        # The harness's Celery app sets task_ignore_result (it has no backend), and Celery
        # puts that in each message, where its worker obeys it: ask for the result per call.
        from bench.adapters.celery import noop

        for _ in range(n):
            noop.apply_async(ignore_result=False)
    else:
        adapter.fill(n, [QUEUE], True)
    adapter.start_workers(PROCESSES, True, [QUEUE])
    try:
        measure.drain_rate(lambda: adapter.remaining([QUEUE]), n, timeout)
    finally:
        adapter.stop_workers()
    keys = list(adapter.redis.scan_iter(match=RESULT_PATTERN, count=1000))
    if len(keys) != n:
        raise RuntimeError(f"expected {n} stored results, found {len(keys)}")
    return sum(_usage(adapter, keys[i : i + 1000]) for i in range(0, n, 1000)) / n


def main(argv: list[str] | None = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    plan = dataclasses.replace(FULL, runs=args.runs, memory=args.count)
    names = args.only or list(adapters.ADAPTERS)
    results = Results(libraries=names)
    loaded: dict[str, Adapter] = {}
    for name in names:
        adapter = adapters.load(name)
        results.status[name] = f"skipped: {adapter}" if isinstance(adapter, str) else adapter.version()
        if not isinstance(adapter, str):
            loaded[name] = adapter
    runner = Runner(plan, loaded, results, log)
    try:
        for run in range(args.runs):
            for name in runner._rotated(run):
                runner._guarded(name, runner.memory)
        for run in range(args.runs if args.results else 0):
            for name in [n for n in runner._rotated(run) if n in RESULT_LIBRARIES]:
                try:
                    value = result_bytes(loaded[name], args.results, plan.timeout)
                    runner._record("result_bytes", name, value)
                except Exception as exc:  # one library failing must not stop the others
                    results.fail("result_bytes", name, f"{type(exc).__name__}: {exc}")
                    log(f"  {name} result_bytes: FAILED {exc}")
                finally:
                    loaded[name].reset()
    finally:
        for adapter in loaded.values():
            adapter.close()
    results.notes.append(
        f"{args.runs} interleaved run(s); {args.count:,} no-argument tasks queued per sample; "
        f"{args.results:,} tasks drained with results per result sample"
    )
    report.publish(results, args.out, "redis_memory")
    return 0


if __name__ == "__main__":
    sys.exit(main())
