"""CPU of the producer's ``task.delay()`` on Redis: ``python -m bench.producer_cpu [-n N] [--rounds R]``.

Makes an app whose broker and result backend are the Redis at ``BENCH_REDIS`` (a private
server: ``redis://127.0.0.1:PORT``, no db number), defines a no-op task and calls
``delay()`` N times per round, reporting process CPU per call (``time.process_time``: the
message building, the options, the routing, the signals and the redis-py call of this
process; the Redis server's own time is not counted). CPU barely moves with the machine's
load, so run it once per checkout (``PYTHONPATH=<checkout>``), interleaved, to compare them.
The user part (Python: building, routing, redis-py) is given apart from the system part
(the socket calls, which vary with the machine's state more than with the code).
The stream is deleted after each round so every round writes to the same small stream.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
import uuid
from typing import Any

from taskq import TaskQ


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.producer_cpu", description=__doc__)
    parser.add_argument("-n", type=int, default=20_000, help="delay() calls per round (default 20,000)")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--args", action="store_true", help="a call with arguments: (12345, email, notify=True)")
    parser.add_argument("--profile", metavar="FILE", help="write a cProfile of the rounds to FILE")
    args = parser.parse_args()
    url = os.environ.get("BENCH_REDIS")
    if not url:
        parser.error("set BENCH_REDIS=redis://127.0.0.1:PORT (a private redis-server)")
    queue = f"producer-cpu-{uuid.uuid4().hex[:8]}"
    app = TaskQ("producer-cpu", broker=f"{url}/0", backend=f"{url}/1", task_default_queue=queue)

    @app.task(name="bench.producer_cpu.noop")
    def noop(*_: Any, **__: Any) -> None:
        return None

    call_args: tuple[Any, ...] = (12345, "user@example.com") if args.args else ()
    call_kwargs: dict[str, Any] = {"notify": True} if args.args else {}

    noop.delay()  # connects, loads scripts: not part of the per-call figure
    profiler = None
    if args.profile:
        import cProfile

        profiler = cProfile.Profile()
    figures: list[float] = []
    users: list[float] = []
    for _ in range(args.rounds):
        if profiler is not None:
            profiler.enable()
        started, user = time.process_time(), os.times().user
        for _ in range(args.n):
            noop.delay(*call_args, **call_kwargs)
        figures.append(1e6 * (time.process_time() - started) / args.n)
        users.append(1e6 * (os.times().user - user) / args.n)
        if profiler is not None:
            profiler.disable()
        app.broker.purge(queue)
    if profiler is not None:
        profiler.dump_stats(args.profile)
    shape = f"{args.rounds} rounds of {args.n:,}{' with args' if args.args else ''}"
    print(f"delay() CPU per call: best {min(figures):.1f} us, median {statistics.median(figures):.1f} us; "
          f"user CPU: best {min(users):.1f} us, median {statistics.median(users):.1f} us "
          f"({shape}; {os.environ.get('PYTHONPATH', '')})")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
