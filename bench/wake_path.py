"""What one task costs a prefork child from the blocking read that brings it to its start,
when it comes to an idle worker (the idle row's path): instructions under callgrind, or
Python calls under cProfile. Load-tolerant, unlike the idle row's wall-clock percentiles.

    cd /tmp && PYTHONPATH=<tree>:<checkout> python -m bench.wake_path [--tasks 300] [--mode callgrind]

``taskq worker -P prefork -c 1`` (bench/adapters/taskq_app.py, taskq from PYTHONPATH's first
tree) runs under ``valgrind --tool=callgrind --collect-atstart=no``; a stamp task is sent
only when the child waits in its blocking read again, so every task takes the wake-up path.
bench/latency_probe.py turns collection on when the read returns and off when the task
starts (``callgrind``), or for whole cycles: task, ack, next fetch and wait (``cycle``);
``cprofile`` runs the worker without valgrind and prints the stretch's profile
(``cprofile-cycle``: the whole cycles' in the consumer's thread). The first
SKIP tasks are warm-up. Use a Redis server of the bench's own (``BENCH_REDIS``).
"""

from __future__ import annotations

import argparse
import glob
import os
import pstats
import re
import shutil
import subprocess
import sys
import tempfile
import time

from bench import latency_probe, measure
from bench.adapters.base import LATENCY_KEY
from bench.monitoring_cost import Variant

SKIP = 20
# Collection toggled from Python: the client request of valgrind/callgrind.h in a function.
TOGGLE_C = '#include <valgrind/callgrind.h>\nvoid bench_toggle_collect(void) { CALLGRIND_TOGGLE_COLLECT; }\n'


def toggle_library(folder: str) -> str:
    source, library = os.path.join(folder, "toggle.c"), os.path.join(folder, "toggle.so")
    with open(source, "w") as f:
        f.write(TOGGLE_C)
    subprocess.run(["cc", "-shared", "-fPIC", "-O1", "-o", library, source], check=True)
    return library


class Child(Variant):
    """The taskq adapter with one prefork child, its command behind ``wrapper``."""

    def __init__(self, source: str, wrapper: list[str]) -> None:
        super().__init__(source=source)
        self.wrapper = wrapper

    def worker_commands(self, processes: int, queues: list[str]) -> list[list[str]]:  # type: ignore[override]
        return [self.wrapper + super().worker_commands(processes, queues)[0]]


def blocked(adapter: Variant) -> bool:
    """Whether a client of the bench's database waits in XREADGROUP BLOCK."""
    return any(c.get("cmd") == "xreadgroup" and "b" in c.get("flags", "") for c in adapter.redis.client_list())


def send_one_by_one(adapter: Variant, n: int, timeout: float) -> None:
    """Each stamp task once the previous one ran and the child blocks again (idle wake-ups)."""
    for done in range(n):
        measure.wait_until(lambda: blocked(adapter), timeout, "the child's blocking read", 0.002)
        adapter.enqueue_stamp()
        measure.wait_until(lambda n=done: int(adapter.redis.llen(LATENCY_KEY)) > n, timeout, "the stamp task", 0.002)


def cpu_percentiles(adapter: Variant) -> str:
    """The stretches' thread CPU time (bench/latency_probe.py), warm-up left out."""
    cpu = [float(v) * 1e6 for v in adapter.redis.lrange(latency_probe.CPU_KEY, SKIP, -1)]
    p50, p90, p99 = (measure.percentile(cpu, q) for q in (50, 90, 99))
    return f"read->start thread CPU p50 {p50:.0f} p90 {p90:.0f} p99 {p99:.0f} µs over {len(cpu)} tasks"


def run(mode: str, tasks: int, keep: str | None = None) -> str:
    import taskq

    source = os.path.dirname(os.path.dirname(os.path.abspath(taskq.__file__)))
    with tempfile.TemporaryDirectory() as folder:
        env = {"BENCH_LATENCY_PROBE": "1", "BENCH_PROBE_WINDOW": mode, "BENCH_PROBE_SKIP": str(SKIP),
               "BENCH_PROBE_COUNT": str(tasks), "BENCH_PROBE_OUT": os.path.join(folder, "profile"),
               "PYTHONHASHSEED": "0"}  # fmt: skip
        wrapper: list[str] = []
        if mode in ("callgrind", "cycle"):
            env["BENCH_PROBE_TOGGLE"] = toggle_library(folder)
            wrapper = ["valgrind", "--tool=callgrind", "--collect-atstart=no", "--dump-instr=no",
                       f"--callgrind-out-file={folder}/callgrind.%p"]  # fmt: skip
        if mode == "cpu":  # the probe's thread CPU time only
            del env["BENCH_PROBE_WINDOW"]
        os.environ.update(env)  # the workers inherit it
        adapter = Child(source, wrapper)
        slow = 60.0 if wrapper else 10.0
        try:
            adapter.reset()
            adapter.start_workers(1)
            send_one_by_one(adapter, SKIP + tasks + 1, slow * 3)
            adapter.stop_workers()
            if mode == "cpu":
                return f"{source}: {cpu_percentiles(adapter)}"
        finally:
            adapter.close()
        if mode.startswith("cprofile"):
            stats = pstats.Stats(*glob.glob(os.path.join(folder, "profile.*")))
            stats.sort_stats("tottime").print_stats(40)
            stats.sort_stats("cumulative").print_stats(60)
            return f"{source}: profile of {tasks} stretches above"
        counts = []
        if keep:  # for callgrind_annotate
            os.makedirs(keep, exist_ok=True)
            for out in glob.glob(os.path.join(folder, "callgrind.*")):
                shutil.copy(out, keep)
        for out in glob.glob(os.path.join(folder, "callgrind.*")):
            with open(out) as f:
                found = re.search(r"^summary: (\d+)", f.read(), re.M)
            counts.append(int(found.group(1)) if found else 0)
        what = "from the read to the start" if mode == "callgrind" else "per idle cycle"
        return f"{source}: {max(counts) / tasks:,.0f} instructions {what} ({max(counts):,} for {tasks} tasks)"


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.wake_path", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    parser.add_argument("--tasks", type=int, default=300)
    modes = ["callgrind", "cycle", "cprofile", "cprofile-cycle", "cpu"]
    parser.add_argument("--mode", choices=modes, default="callgrind")
    parser.add_argument("--keep", metavar="DIR", help="keep the callgrind output files there")
    args = parser.parse_args()
    started = time.monotonic()
    print(run(args.mode, args.tasks, args.keep), f"({time.monotonic() - started:.0f} s, load {os.getloadavg()[0]:.2f})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
