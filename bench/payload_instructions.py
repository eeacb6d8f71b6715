"""Instructions per big argument under callgrind: the producer's ``delay()`` beside redis-py's
``SET`` of the same str, and a worker's consumer running such tasks with results stored.

    cd /tmp && PYTHONPATH=<tree> python -m bench.payload_instructions [--size 102400] [--small 20] [--large 120]

Each count runs twice in ``valgrind --tool=callgrind`` (--small and --large values) and the
difference over the difference of the counts is one value's cost, start-up and imports left
out. Instruction counts barely move with the machine's load (CPU time on a busy 2-core
machine does); they miss what a memory copy or a memchr pass costs per instruction and the
kernel's and Redis's work (bench.payload_enqueue has those as CPU time). Database 5 of
``BENCH_REDIS`` (flushed); use a Redis server of the bench's own.
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile

import redis

from bench.adapters.base import redis_url
from bench.payload_app import DB
from bench.payloads import value

WAYS = ("delay", "set", "worker")


def run(way: str, size: int, k: int) -> None:
    """What callgrind measures: ``k`` values written or, for the worker, run."""
    from bench.payload_app import app, payload

    data = value(size)
    client = redis.Redis.from_url(redis_url(DB))
    if way == "delay":
        for _ in range(k):
            payload.delay(data)
    elif way == "set":
        for i in range(k):
            client.set(f"raw:{i}", data)
    else:
        import taskq.worker.consumer as consumer_module
        import taskq.worker.runner as runner_module

        runner_module.FLUSH_AFTER = 10.0  # type: ignore[misc]  # batches as at full speed (callgrind is 50x slower)
        consumer_module.FAST_TASK = 1.0  # type: ignore[misc]
        consumer = consumer_module.Consumer(app, ["payloads"], 1)
        handle, done = consumer.runner.handle, [0]

        def counted(delivery: object) -> None:
            handle(delivery)  # type: ignore[arg-type]
            done[0] += 1
            if done[0] >= k:
                consumer.stop_requested.set()

        consumer.runner.handle = counted  # type: ignore[method-assign]
        consumer.run()


def instructions(way: str, size: int, k: int) -> int:
    client = redis.Redis.from_url(redis_url(DB))
    client.flushdb()
    if way == "worker":  # queued outside callgrind, a few more than run: the last fetch is whole
        run("delay", size, k + 50)
    env = {**os.environ, "PYTHONHASHSEED": "0"}  # the same dict layouts in every run
    with tempfile.TemporaryDirectory() as folder:
        out = os.path.join(folder, "callgrind.out")
        done = subprocess.run(
            ["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}", os.path.realpath(sys.executable),
             "-m", "bench.payload_instructions", "--run", way, "--size", str(size), "--large", str(k)],
            env=env, capture_output=True, text=True, check=True,
        )  # fmt: skip
    client.flushdb()
    found = re.search(r"Collected : (\d+)", done.stderr)
    if found is None:
        raise RuntimeError(f"no instruction count from callgrind: {done.stderr[-2000:]}")
    return int(found.group(1))


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.payload_instructions", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    parser.add_argument("--size", type=int, default=102_400)
    parser.add_argument("--small", type=int, default=20)
    parser.add_argument("--large", type=int, default=120)
    parser.add_argument("--run", choices=WAYS, help=argparse.SUPPRESS)  # the process callgrind runs
    args = parser.parse_args()
    if args.run is not None:
        run(args.run, args.size, args.large)
        return 0
    for way in WAYS:
        small, large = instructions(way, args.size, args.small), instructions(way, args.size, args.large)
        per = (large - small) / (args.large - args.small)
        print(f"{args.size:,} B {way}: {per:,.0f} instructions per value", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
