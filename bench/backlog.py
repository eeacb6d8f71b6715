"""Backlogs on Redis: drain rate, enqueue rate and worker memory as the queue grows.

    python -m bench.backlog [--sizes 20000,200000,1000000] [--peer-sizes 20000,200000]
                            [--only LIB ...] [--runs 1] [--out DIR]

Each run measures every size, smallest first, and within a size every library (starting
library rotated, as in ``python -m bench``), so a run's sizes are minutes apart, not a whole
series: the "vs its smallest backlog" columns are the median (min-max) over runs of each run's
own ratio, which load drift on a shared machine disturbs far less than a ratio of medians.
The queue is filled through the library's fastest enqueue (taskq ``delay_many``; peers
without a bulk API one call per task) and timed, with the producer's and the Redis server's
CPU per task (both independent of how much of a CPU the producer got), then 2 worker
processes drain it. The drain clock runs from the
last poll that still sees every task to the first that sees none (bench.measure's method).
The worker tree's RSS is read when 2% of the backlog is gone ("start": the workers have
warmed up and hold a full prefetch) and at the last poll before the queue is empty ("end").
Peers run the sizes of ``--peer-sizes`` only (the slowest drain a million tasks in minutes).

``--countdown N`` instead queues N taskq tasks whose ETAs are spread evenly over 60 s
(starting 20 s after the first enqueue, or N/4,000 s, so enqueueing ends before the first
is due; a slice sent after its due time anyway is counted, and its lateness runs from its
send): each task records how late it started; the lateness percentiles and the Redis
server's CPU per task (promotion from the delayed set and the run included; the idle
workers' own cost per second, measured first, subtracted) are reported, for N and 20,000.

Results: ``backlog.{md,json}`` (``countdown.{md,json}``) in ``--out`` (default bench/results), and the plot of drain
rate against backlog size (and against queue count, from the committed results: bench/plots.py),
``docs/backlog.png``.
"""

from __future__ import annotations

import argparse
import dataclasses
import itertools
import json
import math
import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from bench import adapters, measure, plots
from bench.adapters.base import QUEUE, Adapter
from bench.plan import PROCESSES

RESULTS_DIR = Path(__file__).resolve().parent / "results"
TIMEOUT_PER_TASK = 0.002  # seconds allowed per queued task (500/s), plus a fixed minute
PEERS = ("raw", "huey", "dramatiq", "taskiq")
WARM_FRACTION = 0.02  # share of the backlog drained before the "start" RSS is read
LEAD = 20.0  # seconds from the first countdown enqueue to the first due time (at least)
ENQUEUE_GUESS = 4_000  # tasks/s the countdown producer is assumed to send at least (a loaded machine)
SLICES = 600  # countdown enqueue: one delay_many per 100 ms of the 60 s spread
IDLE_BASELINE = 3.0  # seconds of idle workers whose Redis CPU is subtracted per second


@dataclass
class Sample:
    library: str
    size: int
    enqueue: float  # tasks/s
    drain: float  # tasks/s
    rss_start: float  # MB
    rss_end: float  # MB
    rss_max: float  # MB
    cpu_us: float  # worker CPU per task
    tenths: list[float]  # drain rate over each tenth of the backlog, deepest first
    run: int = 0  # which run (samples of one run are compared with each other)
    enqueue_cpu_us: float = math.nan  # producer CPU per task while enqueueing
    enqueue_redis_us: float = math.nan  # Redis server CPU per task while enqueueing
    redis_us: float = math.nan  # Redis server CPU per task while draining


@dataclass
class Report:
    samples: list[Sample] = field(default_factory=list)
    countdown: list[dict[str, float]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def log(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


@dataclass
class Drain:
    rate: float  # tasks/s over the whole drain
    rss_start: float  # MB when WARM_FRACTION of the backlog is gone
    rss_end: float  # MB at the last poll before the queue was empty
    rss_max: float
    cpu_us: float  # worker CPU (user + system, whole tree) per task
    redis_us: float  # Redis server CPU per task (the server is the bench's alone)
    tenths: list[float]  # tasks/s over each tenth of the backlog, deepest queue first


def drain_with_memory(adapter: Adapter, n: int, timeout: float) -> Drain:
    """Drain n queued tasks, reading the workers' RSS and CPU, and the time at each tenth."""
    rss: dict[str, float] = {"start": math.nan, "end": math.nan, "max": 0.0}
    cpu = {"start": 0.0, "end": 0.0, "done": 0.0, "redis_start": 0.0, "redis_end": 0.0}
    last_read = 0.0
    warm = n - max(1, int(n * WARM_FRACTION))
    marks: list[tuple[float, int]] = []  # (time, left) when each tenth of the backlog was gone

    def remaining() -> int:
        nonlocal last_read
        left = adapter.remaining([QUEUE])
        now = time.monotonic()
        if left >= n:
            cpu["start"], cpu["redis_start"] = measure.tree_cpu(adapter.workers.pids), _redis_cpu(adapter.redis)
            marks[:] = [(now, left)]
        elif left <= n - (n * len(marks)) // 10 or left == 0:
            marks.append((now, left))
        if 0 < left < n and (now - last_read > 0.5 or (math.isnan(rss["start"]) and left <= warm)):
            last_read = now
            value = measure.tree_rss(adapter.workers.pids) / 1e6
            rss["end"], rss["max"] = value, max(rss["max"], value)
            cpu["end"], cpu["done"] = measure.tree_cpu(adapter.workers.pids), n - left
            cpu["redis_end"] = _redis_cpu(adapter.redis)
            if math.isnan(rss["start"]) and left <= warm:
                rss["start"] = value
        return left

    adapter.start_workers(PROCESSES)
    try:
        rate = measure.drain_rate(remaining, n, timeout, interval=0.002 if n <= 50_000 else 0.02)
    except measure.BenchTimeout:
        adapter.workers.check_alive()
        raise
    finally:
        adapter.stop_workers()
    tenths = [(a[1] - b[1]) / (b[0] - a[0]) for a, b in itertools.pairwise(marks) if b[0] > a[0]]
    # CPU up to the last read while the tree still ran, per task done by then.
    cpu_us = 1e6 * (cpu["end"] - cpu["start"]) / max(1.0, cpu["done"])
    redis_us = 1e6 * (cpu["redis_end"] - cpu["redis_start"]) / max(1.0, cpu["done"])
    return Drain(rate, rss["start"], rss["end"], rss["max"], cpu_us, redis_us, tenths)


def one(name: str, adapter: Adapter, n: int, run: int = 0) -> Sample:
    adapter.reset()
    cpu, server = time.process_time(), _redis_cpu(adapter.redis)
    enqueue = n / measure.timed(lambda: adapter.fill(n))
    enqueue_cpu, enqueue_redis = (time.process_time() - cpu) * 1e6 / n, (_redis_cpu(adapter.redis) - server) * 1e6 / n
    queued = adapter.remaining([QUEUE])
    if queued != n:
        raise RuntimeError(f"{name}: expected {n} queued tasks, the library reports {queued}")
    d = drain_with_memory(adapter, n, 60 + n * TIMEOUT_PER_TASK)
    adapter.reset()
    sample = Sample(name, n, enqueue, d.rate, d.rss_start, d.rss_end, d.rss_max, d.cpu_us, d.tenths, run,
                    enqueue_cpu, enqueue_redis, d.redis_us)  # fmt: skip
    log(f"  {name:9} {n:>9,}  enqueue {enqueue:>9,.0f}/s (CPU {enqueue_cpu:.1f} + Redis {enqueue_redis:.1f} us/task)  "
        f"drain {d.rate:>9,.0f}/s  "
        f"RSS {d.rss_start:.0f} -> {d.rss_end:.0f} MB (max {d.rss_max:.0f})  worker CPU {d.cpu_us:.1f} us/task  "
        f"Redis CPU {d.redis_us:.1f} us/task  "
        f"by tenths {', '.join(f'{r:,.0f}' for r in d.tenths)}")  # fmt: skip
    return sample


def countdown(n: int, spread: float) -> dict[str, float]:
    """N taskq tasks due evenly over ``spread`` s, the first LEAD (or more) s from now."""
    from datetime import datetime, timezone

    import redis

    from bench import countdown_app
    from bench.adapters.taskq import TaskqAdapter

    app, due = countdown_app.app, countdown_app.due
    client = redis.Redis.from_url(countdown_app.URL)
    client.flushdb()
    adapter = TaskqAdapter()
    adapter.workers.start([countdown_app.worker_command()], {"BENCH_REDIS_URL": countdown_app.URL})
    try:
        time.sleep(IDLE_BASELINE)  # the workers come up; then their idle cost is measured
        adapter.workers.check_alive()
        idle_start, idle_cpu = time.monotonic(), _redis_cpu(client)
        time.sleep(IDLE_BASELINE)
        idle_rate = (_redis_cpu(client) - idle_cpu) / (time.monotonic() - idle_start)
        cpu_before, window = _redis_cpu(client), time.monotonic()
        first = time.time() + max(LEAD, n / ENQUEUE_GUESS)  # enqueueing should end before the first is due
        started = time.perf_counter()
        sent_late = 0  # tasks sent after their due time (the producer's delay, not the broker's)
        for i in range(SLICES):
            count = n * (i + 1) // SLICES - n * i // SLICES
            at = first + spread * i / SLICES
            # A slice the producer sends after its due time measures lateness from the send:
            # the broker cannot run a task before it has it.
            now = time.time()
            sent_late += count if now > at else 0
            due.delay_many([(max(at, now),)] * count, eta=datetime.fromtimestamp(at, timezone.utc))
        enqueue = n / (time.perf_counter() - started)
        ahead = first - time.time()
        log(f"  countdown {n:,}: enqueued at {enqueue:,.0f}/s, {ahead:.1f}s before the first is due")
        measure.wait_until(
            lambda: adapter.workers.check_alive() is None and int(client.llen(countdown_app.LATENESS_KEY)) >= n,
            ahead + spread + 120,
            "the countdown tasks",
            interval=0.5,
        )
        cpu = _redis_cpu(client) - cpu_before - idle_rate * (time.monotonic() - window)
        late = [float(v) for v in client.lrange(countdown_app.LATENESS_KEY, 0, -1)]
        peak = int(client.info("memory")["used_memory_peak"])
    finally:
        adapter.workers.stop()
        client.flushdb()
        app.close()
    row = {
        "size": float(n),
        "enqueue": enqueue,
        "late_p50": measure.percentile(late, 50),
        "late_p99": measure.percentile(late, 99),
        "late_max": max(late),
        "over_1s": float(sum(1 for v in late if v > 1.0)),
        "sent_late": float(sent_late),
        "redis_cpu_us": 1e6 * cpu / n,
        "redis_peak_mb": peak / 1e6,
    }
    log(f"  countdown {n:,}: " + ", ".join(f"{k} {v:,.3f}" for k, v in row.items()))
    return row


def _redis_cpu(client: object) -> float:
    info = client.info("cpu")  # type: ignore[attr-defined]
    return float(info["used_cpu_sys"]) + float(info["used_cpu_user"])


def markdown(report: Report) -> str:
    lines: list[str] = (
        []
        if not report.samples
        else [
            "| library | backlog | enqueue tasks/s | enqueue vs its smallest backlog | enqueue CPU µs/task "
            "(producer + Redis) | drain tasks/s | drain vs its smallest backlog | slowest / fastest tenth | "
            "worker CPU µs/task | Redis CPU µs/task | RSS start MB | RSS end MB | RSS max MB |",
            "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
        ]
    )
    grouped: dict[tuple[str, int], list[Sample]] = {}
    for s in report.samples:
        grouped.setdefault((s.library, s.size), []).append(s)
    for (lib, size), group in sorted(grouped.items(), key=lambda kv: (_order(kv[0][0]), kv[0][1])):
        smallest = grouped[lib, min(n for other, n in grouped if other == lib)]
        lines.append(
            f"| {lib} | {size:,} | {_cell([s.enqueue for s in group])} | {_ratio(group, smallest, 'enqueue')} | "
            f"{_cell([s.enqueue_cpu_us for s in group], 1)} + {_cell([s.enqueue_redis_us for s in group], 1)} | "
            f"{_cell([s.drain for s in group])} | {_ratio(group, smallest, 'drain')} | "
            f"{_spread(group)} | {_cell([s.cpu_us for s in group], 1)} | {_cell([s.redis_us for s in group], 1)} | "
            f"{_cell([s.rss_start for s in group])} | "
            f"{_cell([s.rss_end for s in group])} | "
            f"{_cell([s.rss_max for s in group])} |"
        )
    if report.countdown:
        lines += [
            "",
            "| countdown tasks (due evenly over 60 s) | enqueue tasks/s | lateness p50 s | p99 s | max s | "
            "tasks > 1 s late | sent after due | Redis CPU µs/task (idle cost subtracted) | Redis peak MB |",
            "|---|---|---|---|---|---|---|---|---|",
        ]
        for r in report.countdown:
            lines.append(
                f"| {int(r['size']):,} | {r['enqueue']:,.0f} | {r['late_p50']:.3f} | {r['late_p99']:.3f} | "
                f"{r['late_max']:.3f} | {int(r['over_1s']):,} | {int(r.get('sent_late', 0)):,} | "
                f"{r['redis_cpu_us']:.1f} | {r['redis_peak_mb']:,.0f} |"
            )
    lines += ["", "Cells: median (min-max) over runs."] + [f"- {note}" for note in report.notes]
    return "\n".join(lines) + "\n"


def _order(lib: str) -> int:
    names = list(adapters.ADAPTERS)
    return names.index(lib) if lib in names else len(names)


def _cell(values: list[float], digits: int = 0) -> str:
    mid = measure.median(values)
    if len(values) == 1:
        return f"{mid:,.{digits}f}"
    return f"{mid:,.{digits}f} ({min(values):,.{digits}f}-{max(values):,.{digits}f})"


def _ratio(group: list[Sample], smallest: list[Sample], what: str) -> str:
    """Each run's rate over the same run's rate at the library's smallest backlog, as a
    percentage: median (min-max) over the runs that measured both."""
    base = {s.run: getattr(s, what) for s in smallest}
    ratios = [100 * getattr(s, what) / base[s.run] for s in group if base.get(s.run)]
    if not ratios:
        return "—"
    cell = f"{measure.median(ratios):.0f}%"
    return cell if len(ratios) == 1 else f"{cell} ({min(ratios):.0f}-{max(ratios):.0f}%)"


def _spread(group: list[Sample]) -> str:
    """How even the drain was from the deepest queue to the last task: slowest tenth over fastest."""
    ratios = [min(s.tenths) / max(s.tenths) for s in group if len(s.tenths) >= 2]
    return f"{100 * measure.median(ratios):.0f}%" if ratios else "—"


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.backlog", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    parser.add_argument(
        "--sizes",
        default="20000,200000,1000000",
        help="backlog sizes for taskq (comma-separated; none: no backlog rows)",
    )
    parser.add_argument("--peer-sizes", default="20000,200000", help="backlog sizes for the peers and raw (or none)")
    parser.add_argument("--only", action="append", choices=list(adapters.ADAPTERS), metavar="LIB",
                        help=f"libraries (repeatable; default taskq and {', '.join(PEERS)})")  # fmt: skip
    parser.add_argument("--runs", type=int, default=1)
    parser.add_argument("--countdown", type=int, default=0, help="also run N countdown tasks (and 20,000)")
    parser.add_argument("--out", type=Path, default=RESULTS_DIR)
    parser.add_argument("--plot", type=Path, default=plots.PLOT)
    return parser.parse_args(argv)


def sizes(text: str) -> list[int]:
    if text == "none":
        return []
    try:
        values = [int(v.replace("_", "")) for v in text.split(",") if v]
    except ValueError:
        raise SystemExit(f"python -m bench.backlog: sizes are comma-separated integers, not {text!r}") from None
    if min(values, default=0) <= 0:
        raise SystemExit("python -m bench.backlog: sizes must be positive")
    return sorted(values)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    ours, theirs = sizes(args.sizes), sizes(args.peer_sizes)
    report = Report()
    report.notes.append(f"python -m bench.backlog {' '.join(sys.argv[1:] if argv is None else argv)}".rstrip())
    report.notes.append(f"load average at the start {', '.join(f'{v:.1f}' for v in os.getloadavg())}")
    loaded: dict[str, Adapter] = {}
    for name in (args.only or ["taskq", *PEERS]) if ours or theirs else []:
        adapter = adapters.load(name)
        if isinstance(adapter, str):
            report.notes.append(f"{name}: skipped: {adapter}")
            log(f"{name}: skipped: {adapter}")
        else:
            loaded[name] = adapter
    try:
        for run in range(args.runs):
            for n in sorted(set(ours) | set(theirs)):
                names = list(loaded)
                names = names[run % len(names) :] + names[: run % len(names)] if names else names
                for name in names:
                    if n in (ours if name == "taskq" else theirs):
                        try:
                            report.samples.append(one(name, loaded[name], n, run))
                        except Exception as exc:  # one library failing must not stop the others
                            report.notes.append(f"{name} at {n:,}: FAILED {type(exc).__name__}: {exc}")
                            log(f"  {name} {n:,}: FAILED {type(exc).__name__}: {exc}")
                            loaded[name].stop_workers()
                            loaded[name].reset()
        if args.countdown:
            for n in sorted({20_000, args.countdown}):
                report.countdown.append(countdown(n, spread=60.0))
    finally:
        for adapter in loaded.values():
            adapter.close()
    report.notes.append(f"load average at the end {', '.join(f'{v:.1f}' for v in os.getloadavg())}")
    write(report, args.out, args.plot)
    return 0


def write(report: Report, out: Path, plot_path: Path) -> None:
    """backlog.{md,json} and the plot when backlog rows ran, countdown.{md,json} when countdowns did."""
    text = markdown(report)
    print(text)
    out.mkdir(parents=True, exist_ok=True)
    if report.samples:
        (out / "backlog.md").write_text(text)
        (out / "backlog.json").write_text(json.dumps(dataclasses.asdict(report), indent=1))
        plots.draw(plot_path, backlog=out / "backlog.json")
        log(f"wrote backlog.md and backlog.json in {out}, and {plot_path}")
    if report.countdown:
        (out / "countdown.md").write_text(text)
        (out / "countdown.json").write_text(json.dumps(dataclasses.asdict(report), indent=1))
        log(f"wrote countdown.md and countdown.json in {out}")


if __name__ == "__main__":
    sys.exit(main())
