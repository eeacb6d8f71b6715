"""Beat precision, taskq beat beside Celery beat: how late each enqueue is against its
scheduled instant (mean, p99, max) and whether the lateness grows over time (drift).

    python -m bench.beat_precision [--duration 600] [--period 1.0]

Each scheduler runs as its own process with one entry every ``--period`` seconds, side by
side for the same duration on the local Redis: taskq beat with the Redis store and broker,
taskq beat with the embedded sqlite store and broker, and Celery beat (Redis broker).
Lateness is measured where each scheduler publishes: taskq logs each send's instant and
lateness; Celery beat's ``after_task_publish`` signal records each publish time. Celery's
interval schedule has no anchor, so its k-th send is compared with its first send plus k
periods. Drift is the slope of lateness over time (ms per minute), a least-squares fit.
"""

from __future__ import annotations

import argparse
import os
import re
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import datetime
from pathlib import Path

import redis

REPO = Path(__file__).resolve().parents[1]
REDIS_URL = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0")
SENT = re.compile(r"for (\S+), ([0-9.]+) ms late")

TASKQ_APP = """
import os
from taskq import TaskQ
from taskq.beat import every
app = TaskQ("bench_beat", task_default_queue=os.environ["BENCH_QUEUE"])
period = every(seconds=float(os.environ["BENCH_PERIOD"]))
app.conf.beat_schedule = {"tick": {"task": "bench_beat.tick", "schedule": period}}
"""

CELERY_APP = """
import os, time
from celery import Celery
from celery.signals import after_task_publish
app = Celery("bench_celery", broker=os.environ["BENCH_REDIS"])
app.conf.task_default_queue = os.environ["BENCH_QUEUE"]
app.conf.beat_schedule = {"tick": {"task": "bench_celery.tick", "schedule": float(os.environ["BENCH_PERIOD"])}}
OUT = open(os.environ["BENCH_OUT"], "a", buffering=1)

@after_task_publish.connect
def record(sender=None, **kwargs):
    OUT.write(repr(time.time()) + "\\n")
"""


def stats(lateness_ms: list[float], times: list[float]) -> dict[str, float]:
    ordered = sorted(lateness_ms)
    p99 = ordered[min(len(ordered) - 1, int(0.99 * len(ordered)))]
    # Drift: least-squares slope of lateness against time, in ms per minute.
    mean_t, mean_l = statistics.fmean(times), statistics.fmean(lateness_ms)
    var = sum((t - mean_t) ** 2 for t in times) or 1.0
    slope = sum((t - mean_t) * (v - mean_l) for t, v in zip(times, lateness_ms, strict=True)) / var
    return {
        "n": len(ordered),
        "mean": statistics.fmean(ordered),
        "p99": p99,
        "max": ordered[-1],
        "drift_ms_per_min": slope * 60,
        "last": lateness_ms[-1],
    }


def taskq_lateness(log: str) -> tuple[list[float], list[float]]:
    lateness, times = [], []
    for instant, late in SENT.findall(log):
        lateness.append(float(late))
        times.append(datetime.fromisoformat(instant).timestamp())
    return lateness, times


def celery_lateness(path: Path, period: float) -> tuple[list[float], list[float]]:
    sent = [float(line) for line in path.read_text().split()]
    if not sent:
        return [], []
    # The k-th send is the k-th run: lateness against the grid through the first send.
    first = sent[0]
    lateness = [(t - (first + k * period)) * 1000 for k, t in enumerate(sent)]
    return lateness, sent


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.beat_precision", description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=float, default=600.0, help="seconds each scheduler runs (default 600)")
    parser.add_argument("--period", type=float, default=1.0, help="the entry's period in seconds (default 1)")
    args = parser.parse_args(argv)
    work = Path(tempfile.mkdtemp(prefix="taskq-beat-bench-"))
    (work / "bench_beat.py").write_text(TASKQ_APP)
    (work / "bench_celery.py").write_text(CELERY_APP)
    tag = uuid.uuid4().hex[:8]
    base = {k: v for k, v in os.environ.items() if not k.startswith("TASKQ_")}
    base.update(PYTHONPATH=os.pathsep.join([str(REPO), str(work)]), BENCH_PERIOD=str(args.period))
    runs = {
        "taskq beat (redis)": {
            **base,
            "TASKQ_BROKER_URL": REDIS_URL,
            "TASKQ_RESULT_BACKEND": "none",
            "TASKQ_BROKER_TRANSPORT_OPTIONS": f'{{"global_keyprefix": "bench-beat-{tag}:"}}',
            "TASKQ_BEAT_STORE_URL": f"{REDIS_URL}?prefix=bench-beat-{tag}:beat:",
            "BENCH_QUEUE": f"bench-beat-{tag}",
        },
        "taskq beat (sqlite)": {
            **base,
            "TASKQ_BROKER_URL": f"sqlite:///{work}/broker.db",
            "TASKQ_RESULT_BACKEND": "none",
            "BENCH_QUEUE": f"bench-beat-{tag}",
        },
        "celery beat (redis)": {
            **base,
            "BENCH_REDIS": REDIS_URL,
            "BENCH_QUEUE": f"bench-celery-{tag}",
            "BENCH_OUT": str(work / "celery.sends"),
        },
    }
    procs: dict[str, subprocess.Popen[bytes]] = {}
    for name, env in runs.items():
        log = open(work / f"{name.split()[0]}-{name.split()[-1].strip('()')}.log", "wb")  # the child keeps its own copy
        if name.startswith("celery"):
            command = [
                sys.executable,
                "-m",
                "celery",
                "-A",
                "bench_celery",
                "beat",
                "-l",
                "warning",
                "-s",
                str(work / "celerybeat-schedule"),
            ]
        else:
            command = [
                sys.executable,
                "-m",
                "taskq.beat.cli",
                "beat",
                "-A",
                "bench_beat:app",
                "--heartbeat-file",
                str(work / f"{name}.hb"),
            ]
        procs[name] = subprocess.Popen(command, cwd=work, env=env, stdout=log, stderr=subprocess.STDOUT)
    print(f"running {', '.join(procs)} for {args.duration:.0f}s (work dir {work})", file=sys.stderr)
    time.sleep(args.duration)
    for proc in procs.values():
        proc.send_signal(signal.SIGTERM)
    for proc in procs.values():
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
    rows = {}
    for name in runs:
        if name.startswith("celery"):
            lateness, times = celery_lateness(work / "celery.sends", args.period)
        else:
            lateness, times = taskq_lateness((work / f"taskq-{name.split()[-1].strip('()')}.log").read_text())
        if lateness:
            rows[name] = stats(lateness, times)
    print(f"\nBeat precision: one entry every {args.period:g} s for {args.duration:.0f} s, side by side\n")
    print("| scheduler | sends | mean ms | p99 ms | max ms | last ms | drift ms/min |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for name, row in rows.items():
        print(
            f"| {name} | {row['n']:.0f} | {row['mean']:.2f} | {row['p99']:.2f} | {row['max']:.2f} |"
            f" {row['last']:.2f} | {row['drift_ms_per_min']:+.3f} |"
        )
    client = redis.Redis.from_url(REDIS_URL)
    stale = [*client.scan_iter(match=f"bench-beat-{tag}*"), *client.scan_iter(match=f"bench-celery-{tag}*")]
    if stale:
        client.delete(*stale)
    client.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
