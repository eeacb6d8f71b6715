"""A chord of N header tasks on Redis, taskq beside Celery: wall time from sending the chord to
the body's result (each side's own workers, broker and result backend on the same Redis).

    python -m bench.chord [--size 1000] [--concurrency 2] [--runs 3]

taskq: ``taskq worker`` (prefork) on its Redis broker and backend; counting is one script call
per header task. Celery: ``celery worker`` (prefork) on kombu's Redis transport and Celery's
Redis result backend (its ``.j`` list counting). Both header tasks are ``add(i, 0)`` and both
bodies sum the list. The median of ``--runs`` is reported, after one warm-up chord each.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import redis

from bench.procs import WorkerGroup

REDIS_URL = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0")

TASKS = """
import os
{setup}


@app.task(name="bench_chord.add")
def add(a, b):
    return a + b


@app.task(name="bench_chord.tsum")
def tsum(values):
    return sum(values)
"""
TASKQ_SETUP = """from taskq import TaskQ
app = TaskQ("bench_chord", broker=os.environ["BENCH_REDIS"], backend=os.environ["BENCH_REDIS"],
            task_default_queue=os.environ["BENCH_QUEUE"],
            broker_transport_options={{"global_keyprefix": os.environ["BENCH_PREFIX"]}})"""
CELERY_SETUP = """from celery import Celery
app = Celery("bench_chord", broker=os.environ["BENCH_REDIS"], backend=os.environ["BENCH_REDIS"])
app.conf.task_default_queue = os.environ["BENCH_QUEUE"]
app.conf.broker_transport_options = {"global_keyprefix": os.environ["BENCH_PREFIX"]}"""


def _project(folder: Path, setup: str) -> None:
    (folder / "bench_chord.py").write_text(TASKS.format(setup=setup.replace("{{", "{").replace("}}", "}")))


def _time_chords(send: Callable[[], Any], size: int, runs: int) -> list[float]:
    send().get(timeout=600)  # warm-up: workers started, connections open
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        value = send().get(timeout=600)
        times.append(time.perf_counter() - started)
        assert value == sum(range(size)), value
    return times


def run_side(name: str, size: int, concurrency: int, runs: int) -> list[float]:
    prefix, queue = f"bench-chord-{uuid.uuid4().hex[:8]}:", f"bench-chord-{uuid.uuid4().hex[:8]}"
    env = {"BENCH_REDIS": REDIS_URL, "BENCH_QUEUE": queue, "BENCH_PREFIX": prefix}
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        _project(folder, TASKQ_SETUP if name == "taskq" else CELERY_SETUP)
        env["PYTHONPATH"] = os.pathsep.join([str(folder), os.environ.get("PYTHONPATH", "")])
        os.environ.update(env)
        sys.path.insert(0, str(folder))
        sys.modules.pop("bench_chord", None)
        import bench_chord

        if name == "taskq":
            from taskq import chord

            command = [sys.executable, "-m", "taskq", "worker", "-A", "bench_chord:app", "-c", str(concurrency)]
            command += ["-Q", queue]

            def send() -> Any:
                return chord([bench_chord.add.s(i, 0) for i in range(size)], bench_chord.tsum.s()).apply_async()
        else:
            from celery import chord as cchord

            command = [sys.executable, "-m", "celery", "-A", "bench_chord", "worker", "-c", str(concurrency)]
            command += ["-Q", queue, "--without-heartbeat", "--without-mingle", "--without-gossip", "-l", "warning"]

            def send() -> Any:
                return cchord([bench_chord.add.s(i, 0) for i in range(size)])(bench_chord.tsum.s())

        workers = WorkerGroup(name)
        workers.start([command], {**env, "PYTHONPATH": env["PYTHONPATH"]})
        try:
            return _time_chords(send, size, runs)
        finally:
            workers.stop()
            bench_chord.app.close()
            sys.path.remove(str(folder))
            client = redis.Redis.from_url(REDIS_URL)
            for key in client.scan_iter(match=prefix + "*"):
                client.delete(key)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.chord", description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", type=int, default=1000, help="header tasks per chord (default 1000)")
    parser.add_argument("--concurrency", type=int, default=2, help="worker processes of each side (default 2)")
    parser.add_argument("--runs", type=int, default=3, help="timed chords per side (default 3)")
    args = parser.parse_args(argv)
    if args.size < 1 or args.concurrency < 1 or args.runs < 1:
        parser.error("--size, --concurrency and --runs must be positive")
    print(f"chord of {args.size} header tasks on Redis, {args.concurrency} worker processes, median of {args.runs}")
    print(f"{'library':<8} {'median s':>9} {'best s':>7} {'tasks/s':>8}")
    for name in ("taskq", "celery"):
        times = run_side(name, args.size, args.concurrency, args.runs)
        median = statistics.median(times)
        print(f"{name:<8} {median:>9.2f} {min(times):>7.2f} {args.size / median:>8.0f}", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
