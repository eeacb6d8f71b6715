"""Worker CPU per task, checkouts side by side: ``python -m bench.task_cpu TREE [TREE ...]``.

For each checkout (a directory holding ``taskq/``), in interleaved rounds: start
``taskq worker`` with that checkout first on PYTHONPATH, wait until it idles, queue N no-op
tasks, and measure the user+system CPU its whole process tree (pool children and the
control process included) used from the first task queued to the last one finished. Worker
start-up is not counted. Prints the median and range of microseconds per task per checkout.

The broker is Redis (``BENCH_REDIS``, a private server recommended) or SQLite
(``--broker sqlite``, a file in a temporary directory). Results are off unless ``--results``.
"""

from __future__ import annotations

import argparse
import importlib
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import ModuleType

import psutil  # type: ignore[import-untyped,unused-ignore]

from bench.adapters.base import redis_url
from bench.measure import median, wait_until

QUEUE = "bench-cpu"
DB = 12
APP = "bench_cpu_app:app"  # bench/task_cpu_app.py, copied out (see there)


def tree_cpu(pid: int) -> float:
    """CPU seconds used so far by a process and its live descendants."""
    total = 0.0
    try:
        root = psutil.Process(pid)
        procs = [root, *root.children(recursive=True)]
    except psutil.NoSuchProcess:
        return 0.0
    for proc in procs:
        try:
            times = proc.cpu_times()
            total += times.user + times.system
        except psutil.NoSuchProcess:
            continue
    return total


def one_run(tree: Path, url: str, app_dir: Path, args: argparse.Namespace) -> float:
    """Microseconds of worker CPU per task for one drain of ``args.n`` tasks."""
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(tree), str(app_dir)]),
        "BENCH_CPU_URL": url,
        "TASKQ_TASK_IGNORE_RESULT": "false" if args.results else "true",
    }
    app = producer(url)
    app.main(["reset"])
    command = [sys.executable, "-m", "taskq", "worker", "-A", APP, "-Q", QUEUE, "-P", args.pool,
               "-c", str(args.concurrency), "-l", "warning"]  # fmt: skip
    worker = subprocess.Popen(command, env=env, stdin=subprocess.DEVNULL, start_new_session=True)
    try:
        time.sleep(args.settle)  # imports, forks, the first idle fetch
        before = tree_cpu(worker.pid)
        app.main(["fill", str(args.n)])
        wait_until(lambda: app.app.broker.queue_length(app.QUEUE) == 0, 600, "the drain", interval=0.02)
        return 1e6 * (tree_cpu(worker.pid) - before) / args.n
    finally:
        os.killpg(worker.pid, signal.SIGTERM)
        try:
            worker.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(worker.pid, signal.SIGKILL)
            worker.wait()


def producer(url: str) -> ModuleType:
    """The app module in this process (taskq of this checkout): it queues and counts."""
    os.environ["BENCH_CPU_URL"] = url
    return importlib.import_module("bench.task_cpu_app")


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.task_cpu", description=__doc__)
    parser.add_argument("trees", nargs="+", type=Path, help="checkouts to compare (directories holding taskq/)")
    parser.add_argument("-n", type=int, default=20_000, help="tasks per drain (default 20,000)")
    parser.add_argument("--runs", type=int, default=3, help="interleaved rounds (default 3)")
    parser.add_argument("-P", "--pool", default="solo", help="worker pool (default solo)")
    parser.add_argument("-c", "--concurrency", type=int, default=1)
    parser.add_argument("--broker", choices=["redis", "sqlite"], default="redis")
    parser.add_argument("--results", action="store_true", help="workers store results")
    parser.add_argument("--settle", type=float, default=3.0, help="seconds the worker gets to start")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-cpu-") as tmp:
        app_dir = Path(tmp)
        shutil.copy(Path(__file__).with_name("task_cpu_app.py"), app_dir / "bench_cpu_app.py")
        url = redis_url(DB) if args.broker == "redis" else f"sqlite:///{tmp}/broker.db"
        figures: dict[Path, list[float]] = {tree: [] for tree in args.trees}
        for _ in range(args.runs):
            for tree in args.trees:
                figures[tree].append(one_run(tree.resolve(), url, app_dir, args))
                print(f"  {tree}: {figures[tree][-1]:.1f} us/task", file=sys.stderr, flush=True)
    what = f"-P {args.pool} -c {args.concurrency}, {args.broker}, {'results stored' if args.results else 'no results'}"
    print(f"worker CPU per task (user+sys of the worker tree), {args.n:,} no-op tasks, {what}:")
    for tree, values in figures.items():
        spread = f"min {min(values):.1f}, max {max(values):.1f}, runs {len(values)}"
        print(f"  {tree}: median {median(values):.1f} us ({spread})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
