"""Python steps (bytecodes) per task of one Redis consumer, by function, as a prefork child runs it.

    cd /tmp && PYTHONPATH=<tree>:<checkout> python -m bench.consumer_steps [--tasks 2000] [--top 40]

The consumer of bench/consumer_instructions.py (both records written, the flush at each
fetch) runs ``--tasks`` no-op tasks queued on ``BENCH_REDIS`` (db 8) under ``sys.settrace``
with opcode events: each bytecode the interpreter runs is counted for its function. Steps
are what the interpreter loop costs (callgrind puts a tree's extra instructions there);
unlike callgrind they name the Python function. C work (the JSON scanner, redis-py's
hiredis parser) is not counted: compare trees in instructions too.
"""

from __future__ import annotations

import argparse
import collections
import os
import sys
from types import FrameType
from typing import Any

from bench.adapters.base import QUEUE
from bench.adapters.taskq import TaskqAdapter
from bench.consumer_instructions import consume


def steps(tasks: int) -> collections.Counter[tuple[str, str]]:
    """Steps by (file, function) over ``tasks`` tasks."""
    adapter = TaskqAdapter()
    try:
        adapter.reset()
        adapter.fill(tasks + 200, [QUEUE], False)
    finally:
        adapter.redis.close()
    os.environ.update(BENCH_RESULTS="0", BENCH_REDIS_URL=adapter.url)
    counts: collections.Counter[tuple[str, str]] = collections.Counter()

    def trace(frame: FrameType, event: str, arg: Any) -> Any:
        frame.f_trace_opcodes = True
        if event == "opcode":
            code = frame.f_code
            counts[code.co_filename.rsplit("/taskq/", 1)[-1], code.co_name] += 1
        return trace

    sys.settrace(trace)
    try:
        consume(tasks)
    finally:
        sys.settrace(None)
    return counts


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.consumer_steps", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    parser.add_argument("--tasks", type=int, default=2000)
    parser.add_argument("--top", type=int, default=40)
    args = parser.parse_args()
    counts = steps(args.tasks)
    print(f"{sum(counts.values()) / args.tasks:,.0f} steps per task")
    for (where, name), n in counts.most_common(args.top):
        print(f"{n / args.tasks:8.1f}  {name}  ({where})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
