"""Enqueue of big arguments in CPU, beside raw redis-py SET of the same str: measures that a
loaded machine does not blur as much as MB/s (``python -m bench.payloads``).

    python -m bench.payload_enqueue [--sizes 1024,102400,1048576] [--megabytes 20] [--runs 5]

Per size, interleaved runs of ``payload.delay(data)`` (bench.payload_app, one producer) and
of ``SET`` of the same str with one redis-py client (as in bench.payloads), each
``--megabytes`` worth of values (at least 50). Per value: the wall time, the producer's own
CPU (process time) and Redis's CPU (INFO cpu, user + system), medians (min-max).
On a quiet machine the wall time is about the sum of the two CPU figures and the transfer;
under load it is not, while the CPU figures stay put. Database 5 of ``BENCH_REDIS``
(flushed before and after); use a Redis server of the bench's own.
"""

from __future__ import annotations

import argparse
import sys
import time
from functools import partial

import redis

from bench.adapters.base import redis_url
from bench.measure import interleaved, spread
from bench.payload_app import DB
from bench.payloads import value

TASKQ, RAW = "taskq delay()", "redis-py SET"
WAYS = (TASKQ, RAW)
Sample = tuple[float, float, float]  # wall, producer CPU, Redis CPU: µs per value


def redis_cpu(client: redis.Redis) -> float:
    cpu = client.info("cpu")
    return float(cpu["used_cpu_user"]) + float(cpu["used_cpu_sys"])


def timed(client: redis.Redis, way: str, data: str, n: int) -> Sample:
    from bench.payload_app import payload

    client.flushdb()
    server, own, started = redis_cpu(client), time.process_time(), time.perf_counter()
    if way == TASKQ:
        for _ in range(n):
            payload.delay(data)
    else:
        for i in range(n):
            client.set(f"raw:{i}", data)
    wall, own = time.perf_counter() - started, time.process_time() - own
    server = redis_cpu(client) - server
    return wall * 1e6 / n, own * 1e6 / n, server * 1e6 / n


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.payload_enqueue", description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", default="1024,102400,1048576")
    parser.add_argument("--megabytes", type=float, default=20.0)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args(sys.argv[1:] if argv is None else argv)
    client = redis.Redis.from_url(redis_url(DB))
    print("| argument | written by | wall µs/value | producer CPU µs/value | Redis CPU µs/value |")
    print("|---|---|---|---|---|")
    try:
        for size in (int(s) for s in args.sizes.split(",")):
            data = value(size)
            n = max(50, int(args.megabytes * 1e6 / size))
            got = interleaved(WAYS, args.runs, partial(timed, client, data=data, n=n))
            for name, samples in got.items():
                wall, own, server = ([s[i] for s in samples] for i in range(3))
                cells = " | ".join(spread(column, 0) for column in (wall, own, server))
                print(f"| {size:,} B | {name} | {cells} |", flush=True)
    finally:
        client.flushdb()
        client.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
