"""Profile a library's drain with py-spy: ``python -m bench.profile [LIB] [--results] [-n N]``.

Queues N no-op tasks, starts the library's workers (2 processes), samples the whole worker
process tree with ``py-spy record --subprocesses`` while they drain, and prints where the
time goes: the functions with the most samples on the stack (inclusive) and at the top of
the stack (self), as percentages of the samples in the worker processes; and what each task
costs in worker CPU, Redis CPU and Redis commands (calls per task and the server's µs per
call of each: a command whose cost grows with the queue's length shows there).
"""

from __future__ import annotations

import argparse
import collections
import shutil
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

import psutil  # type: ignore[import-untyped,unused-ignore]

from bench import adapters, measure
from bench.adapters.base import Adapter
from bench.plan import PROCESSES

SAMPLE_RATE = 250  # samples per second per process
TOP = 25


def _function(frame: str) -> str:
    """``name (path:line)`` -> ``name (path)``: inclusive time is per function, not per line."""
    name, _, where = frame.partition(" (")
    return f"{name} ({where.rpartition(':')[0]})" if ":" in where else frame


def summarize(raw: Path, top: int = TOP) -> str:
    """Inclusive (per function) and self (per line) shares from py-spy's collapsed stacks."""
    inclusive: collections.Counter[str] = collections.Counter()
    own: collections.Counter[str] = collections.Counter()
    total = 0
    for line in raw.read_text().splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        frames = [f for f in stack.split(";") if f and not f.startswith(("process ", "thread "))]
        if not frames:
            continue
        total += count
        for function in {_function(f) for f in frames}:
            inclusive[function] += count
        own[frames[-1]] += count
    if not total:
        return "no samples (is py-spy allowed to ptrace here?)"
    lines = [f"{total} samples in the worker processes", "", "inclusive (function on the stack):"]
    lines += [f"  {100 * c / total:5.1f}%  {frame}" for frame, c in inclusive.most_common(top)]
    lines += ["", "self (line at the top of the stack):"]
    lines += [f"  {100 * c / total:5.1f}%  {frame}" for frame, c in own.most_common(top)]
    return "\n".join(lines)


def redis_counters(adapter: Adapter) -> dict[str, float]:
    """Server CPU seconds, and calls and µs per command (``name`` and ``name usec``;
    server-wide: other clients add noise). A script's µs include the commands it ran."""
    cpu = adapter.redis.info("cpu")
    counters = {"cpu": float(cpu["used_cpu_user"]) + float(cpu["used_cpu_sys"])}
    for name, stats in adapter.redis.info("commandstats").items():
        counters[name.removeprefix("cmdstat_")] = float(stats["calls"])
        counters[f"{name.removeprefix('cmdstat_')} usec"] = float(stats["usec"])
    return counters


def worker_cpu(adapter: Adapter) -> float:
    """CPU seconds used so far by the worker process trees (children that exited are lost)."""
    total = 0.0
    for pid in adapter.workers.pids:
        try:
            root = psutil.Process(pid)
            for proc in [root, *root.children(recursive=True)]:
                times = proc.cpu_times()
                total += times.user + times.system
        except psutil.NoSuchProcess:
            continue
    return total


def per_task(before: dict[str, float], after: dict[str, float], worker_seconds: float, n: int) -> str:
    lines = [
        f"CPU per task: workers {1e6 * worker_seconds / n:.1f} us, "
        f"Redis server {1e6 * (after['cpu'] - before['cpu']) / n:.1f} us (server-wide)",
        "Redis commands per task (server-wide), and the server's µs per call:",
    ]
    calls = {k: (after[k] - before.get(k, 0.0)) / n for k in after if k != "cpu" and not k.endswith(" usec")}
    for name, per in sorted(calls.items(), key=lambda kv: -kv[1]):
        if per >= 0.005:
            usec = (after[f"{name} usec"] - before.get(f"{name} usec", 0.0)) / (per * n)
            lines.append(f"  {per:6.3f}  {usec:8.1f} us  {name}")
    return "\n".join(lines)


def profile(adapter: Adapter, n: int, with_results: bool, out: Path) -> tuple[float, str]:
    adapter.reset()
    adapter.fill(n, with_results=with_results)
    adapter.start_workers(PROCESSES, with_results)
    spy = subprocess.Popen(
        ["py-spy", "record", "--subprocesses", "--nonblocking", "-r", str(SAMPLE_RATE), "-f", "raw",
         "-o", str(out), "-p", str(adapter.workers.pids[0])],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )  # fmt: skip
    try:
        cpu_before, counters_before = worker_cpu(adapter), redis_counters(adapter)
        rate = measure.drain_rate(adapter.remaining, n, timeout=300)
        costs = per_task(counters_before, redis_counters(adapter), worker_cpu(adapter) - cpu_before, n)
    finally:
        spy.send_signal(signal.SIGINT)  # py-spy writes its output on SIGINT
        try:
            spy.wait(timeout=60)
        except subprocess.TimeoutExpired:
            spy.kill()
            spy.wait()
        adapter.stop_workers()
        adapter.reset()
    return rate, costs


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.profile", description=__doc__)
    parser.add_argument("library", nargs="?", default="taskq", choices=list(adapters.ADAPTERS))
    parser.add_argument("--results", action="store_true", help="workers store results")
    parser.add_argument("-n", type=int, default=100_000, help="tasks to drain (default 100,000)")
    parser.add_argument("--raw-out", type=Path, help="keep py-spy's collapsed stacks here")
    args = parser.parse_args()
    if shutil.which("py-spy") is None:
        print("py-spy is not installed: pip install py-spy", file=sys.stderr)
        return 2
    adapter = adapters.load(args.library)
    if isinstance(adapter, str):
        print(f"{args.library}: {adapter}", file=sys.stderr)
        return 2
    out = args.raw_out or Path(tempfile.mkstemp(prefix="bench-pyspy-", suffix=".txt")[1])
    try:
        rate, costs = profile(adapter, args.n, args.results, out)
    finally:
        adapter.close()
    print(f"{args.library}: drained {args.n:,} tasks at {rate:,.0f}/s with {PROCESSES} processes"
          f"{', storing results' if args.results else ''} (py-spy at {SAMPLE_RATE} Hz slows it)\n")  # fmt: skip
    print(costs + "\n")
    print(summarize(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
