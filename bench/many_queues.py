"""One worker consuming many queues: drain rate against its single-queue rate, and what
thousands of idle queues cost Redis.

    python -m bench.many_queues [--queues 1000] [--tasks 20000] [--idle-queues 10000]
                                [--idle-seconds 30] [--runs 3] [--only LIB ...] [--out DIR]

Drain: ``--tasks`` no-op tasks queued round-robin over ``--queues`` queues (and, interleaved,
the same count on one queue), then one worker command with 2 processes consuming all of them
(``-Q q0,q1,...``); the clock as in ``python -m bench`` (bench.measure.drain_rate), polled
every 20 ms because counting a thousand queues takes a few milliseconds itself (taskq's
count there reads lane 0 only: see ``remaining``). Rows: rate on
1 queue, rate on N queues, and their ratio per library (the target: taskq >= 50%).

Idle: the worker started on ``--idle-queues`` empty queues, given 3 s plus one task's round
trip to settle, then ``INFO commandstats`` and ``INFO cpu`` read before and after
``--idle-seconds``: commands per second the idle worker costs Redis (commands a Lua script
runs count one each, as commandstats counts them; the harness's own INFO calls are taken
off) and Redis CPU per second. Those count every client of the server: the idle phase
refuses to measure while a client older than this run is connected (a worker an earlier,
interrupted run left behind: ``foreign_clients``). Writes ``many_queues.{md,json}`` in ``--out``.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from bench import adapters, measure, report
from bench.adapters.base import Adapter
from bench.plan import FULL, PROCESSES
from bench.results import Results
from bench.runner import PHASE_ROWS, Runner

RESULTS_DIR = Path(__file__).resolve().parent / "results"
POLL = 0.02  # seconds between counts of the remaining tasks
SETTLE = 3.0  # seconds an idle worker gets before its cost is measured
STARTED = time.monotonic()  # this run's start: a client connected before it is not this run's
DEFAULT_LIBRARIES = ["taskq", "raw", "celery", "dramatiq"]
PHASE_ROWS.update(drains=["mq_single", "mq_many", "mq_ratio"], idle_queues=["mq_idle_calls", "mq_idle_cpu"])


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.many_queues", description=__doc__.split("\n")[0])
    parser.add_argument("--queues", type=int, default=1000)
    parser.add_argument("--tasks", type=int, default=20_000)
    parser.add_argument("--idle-queues", type=int, default=10_000)
    parser.add_argument("--idle-seconds", type=float, default=30.0)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--only", action="append", choices=list(adapters.ADAPTERS), metavar="LIB")
    parser.add_argument("--out", type=Path, default=RESULTS_DIR)
    return parser.parse_args(argv)


def log(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def names(count: int) -> list[str]:
    return [f"mq{i}" for i in range(count)]


def remaining(adapter: Adapter, queues: Sequence[str]) -> int:
    """The adapter's count, except for taskq: its full count reads 11 keys per queue (ten
    priority lanes and the delayed set), 11,000 commands per poll over a thousand queues,
    which would slow the Redis its worker uses. These no-op tasks are all in lane 0 (ready,
    priority 0, and a claimed entry stays in the stream until its ack), so one XLEN per
    queue counts them: as many commands as the raw count uses."""
    if adapter.name != "taskq":
        return adapter.remaining(queues)
    broker = adapter.tasks.app.broker  # type: ignore[attr-defined]
    pipe = adapter.redis.pipeline(transaction=False)
    for queue in queues:
        pipe.xlen(broker.lane_key(queue, 0))
    return sum(int(n) for n in pipe.execute())


def drain(adapter: Adapter, queues: Sequence[str], n: int, timeout: float) -> float:
    adapter.reset()
    adapter.fill(n, queues)
    adapter.start_workers(PROCESSES, False, queues)
    try:
        return measure.drain_rate(lambda: remaining(adapter, queues), n, timeout, interval=POLL)
    except measure.BenchTimeout:
        adapter.workers.check_alive()
        raise
    finally:
        adapter.stop_workers()


def idle_cost(
    adapter: Adapter, queues: Sequence[str], seconds: float, timeout: float
) -> tuple[float, float, dict[str, int]]:
    """Commands per second and Redis CPU seconds per second of a worker idle on ``queues``,
    and the commands of that window by name (the harness's two INFO calls taken off)."""
    foreign = foreign_clients(adapter.redis)
    if foreign:
        raise RuntimeError(
            f"{len(foreign)} client(s) of this Redis connected before this run started ({', '.join(foreign[:5])}): "
            "INFO commandstats would count their commands as the idle worker's; stop them first "
            "(workers of an interrupted run?)"
        )
    adapter.reset()
    adapter.start_workers(PROCESSES, False, queues)
    try:
        # One task on the last queue: the worker is up and consuming all of them.
        adapter.fill(1, [queues[-1]])
        measure.wait_until(lambda: _idle(adapter, queues[-1:]), timeout, "the warm-up task", interval=0.05)
        time.sleep(SETTLE)
        calls, cpu = _server_counts(adapter)
        time.sleep(seconds)
        calls_after, cpu_after = _server_counts(adapter)
        adapter.workers.check_alive()
    finally:
        adapter.stop_workers()
    spent = {name: n - calls.get(name, 0) for name, n in calls_after.items() if n > calls.get(name, 0)}
    spent["info"] = spent.get("info", 0) - 2  # the INFO cpu of the first reading, the INFO commandstats of the second
    spent = {name: n for name, n in spent.items() if n}
    return sum(spent.values()) / seconds, (cpu_after - cpu) / seconds, spent


def foreign_clients(client: Any, since: float = STARTED) -> list[str]:
    """The addresses of the server's clients connected before ``since`` (time.monotonic()),
    with a second's slack for the clock's grain (CLIENT LIST ages are whole seconds)."""
    age = time.monotonic() - since
    return [str(c["addr"]) for c in client.client_list() if int(c["age"]) > age + 1]


def _idle(adapter: Adapter, queues: Sequence[str]) -> bool:
    adapter.workers.check_alive()
    return remaining(adapter, queues) == 0


def _server_counts(adapter: Adapter) -> tuple[dict[str, int], float]:
    """Calls by command name (``INFO commandstats``) and Redis CPU seconds so far."""
    stats = adapter.redis.info("commandstats")
    cpu = adapter.redis.info("cpu")
    calls = {name.removeprefix("cmdstat_"): int(v["calls"]) for name, v in stats.items()}
    return calls, float(cpu["used_cpu_sys"]) + float(cpu["used_cpu_user"])


def main(argv: list[str] | None = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    libraries = args.only or DEFAULT_LIBRARIES
    results = Results(libraries=libraries)
    loaded: dict[str, Adapter] = {}
    for name in libraries:
        adapter = adapters.load(name)
        results.status[name] = f"skipped: {adapter}" if isinstance(adapter, str) else adapter.version()
        if not isinstance(adapter, str):
            loaded[name] = adapter
    plan = dataclasses.replace(FULL, runs=args.runs)
    runner = Runner(plan, loaded, results, log)
    many = names(args.queues)
    single = names(1)
    ratios: dict[str, list[float]] = {}

    def drains(name: str, adapter: Adapter) -> None:
        one = drain(adapter, single, args.tasks, plan.timeout)
        runner._record("mq_single", name, one)
        spread = drain(adapter, many, args.tasks, plan.timeout)
        runner._record("mq_many", name, spread)
        runner._record("mq_ratio", name, 100 * spread / one)
        ratios.setdefault(name, []).append(spread / one)

    def idle(name: str, adapter: Adapter) -> None:
        calls, cpu, spent = idle_cost(adapter, names(args.idle_queues), args.idle_seconds, plan.timeout)
        log(f"  {name} idle commands in {args.idle_seconds:g} s: {dict(sorted(spent.items(), key=lambda i: -i[1]))}")
        runner._record("mq_idle_calls", name, calls)
        runner._record("mq_idle_cpu", name, 1000 * cpu)

    drains.__name__ = "drains"
    idle.__name__ = "idle_queues"
    try:
        for run in range(args.runs):
            for name in runner._rotated(run):
                runner._guarded(name, drains)
        for name in loaded:
            if loaded[name].multi_queue and args.idle_seconds > 0:
                runner._guarded(name, idle)
    finally:
        for adapter in loaded.values():
            adapter.close()
    results.notes.append(
        f"{args.runs} interleaved run(s); {args.tasks:,} tasks over 1 and over {args.queues:,} queues, "
        f"{PROCESSES} worker processes; idle: {args.idle_queues:,} empty queues for {args.idle_seconds:.0f} s"
    )
    report.publish(results, args.out, "many_queues")
    return 0


if __name__ == "__main__":
    sys.exit(main())
