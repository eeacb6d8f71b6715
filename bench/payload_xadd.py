"""What Redis spends on a big XADD against a SET of the same bytes, and what a body kept out
of the stream (SET of the body + XADD of its key in one MULTI/EXEC) would cost instead.

    python -m bench.payload_xadd [--sizes 1024,16384,102400,1048576] [--megabytes 20] [--runs 5]

Per size and way of writing, ``--megabytes`` worth of values (at least 50), each written by
one client that waits for the reply, as taskq's producer does:

* ``SET``: the value under a key of its own;
* ``XADD``: the value as a stream entry's field (what taskq's publish sends);
* ``MULTI SET XADD EXEC``: the value under a key of its own and a stream entry naming it.

Each command is framed by hand and written with one ``sendmsg`` (no copy of the value on the
client, as taskq's publish writes a big message), so the rows differ in Redis only. Columns:
INFO commandstats µs per value of the SET and XADD calls (what Redis counts inside a command),
Redis CPU per value (INFO cpu, user + system: reading the argument from the socket too),
and the wall time per value. Medians (min-max) over interleaved runs.
Database 7 of ``BENCH_REDIS`` (flushed before and after); use a Redis server of the bench's own.
"""

from __future__ import annotations

import argparse
import os
import socket
import sys
import time
from functools import partial

import redis

from bench.adapters.base import redis_url
from bench.measure import interleaved, spread
from taskq.brokers.redis.gathered import write_all

DB = 7
WAYS = ("SET", "XADD", "MULTI SET XADD EXEC")


def bulk(value: bytes) -> bytes:
    return b"$%d\r\n%b\r\n" % (len(value), value)


def frames(way: str, key: bytes, value: bytes) -> tuple[list[bytes], int]:
    """The buffers of one write (the value not copied) and how many replies it gets."""
    head = b"$%d\r\n" % len(value)
    if way == "SET":
        return [b"*3\r\n" + bulk(b"SET") + bulk(key) + head, value, b"\r\n"], 1
    if way == "XADD":
        return [b"*5\r\n" + bulk(b"XADD") + bulk(b"s") + bulk(b"*") + bulk(b"m") + head, value, b"\r\n"], 1
    xadd = b"*5\r\n" + bulk(b"XADD") + bulk(b"s") + bulk(b"*") + bulk(b"m") + bulk(key)
    multi = b"*1\r\n$5\r\nMULTI\r\n*3\r\n" + bulk(b"SET") + bulk(key) + head
    return [multi, value, b"\r\n" + xadd + b"*1\r\n$4\r\nEXEC\r\n"], 4


def redis_cpu(client: redis.Redis) -> float:
    cpu = client.info("cpu")
    return float(cpu["used_cpu_user"]) + float(cpu["used_cpu_sys"])


def command_usec(client: redis.Redis, names: tuple[str, ...]) -> int:
    stats = client.info("commandstats")
    return sum(int(stats.get(f"cmdstat_{name}", {}).get("usec", 0)) for name in names)


def sample(client: redis.Redis, way: str, value: bytes, n: int) -> tuple[float, float, float]:
    """(commandstats µs, Redis CPU µs, wall µs) per value written ``way``."""
    conn = client.connection_pool.get_connection()
    try:
        conn.connect()  # type: ignore[no-untyped-call]
        sock: socket.socket = conn._sock  # type: ignore[assignment]
        # Inside MULTI/EXEC: the SET and the XADD (EXEC's own figure holds them again)
        counted = {"SET": ("set",), "XADD": ("xadd",)}.get(way, ("set", "xadd"))
        client.flushdb()
        client.config_resetstat()
        cpu, started = redis_cpu(client), time.perf_counter()
        for i in range(n):
            buffers, replies = frames(way, b"v:%d" % i, value)
            write_all(sock, buffers)
            for _ in range(replies):
                conn.read_response()
        wall = time.perf_counter() - started
        cpu = redis_cpu(client) - cpu
        return command_usec(client, counted) / n, cpu * 1e6 / n, wall * 1e6 / n
    finally:
        conn.disconnect()  # type: ignore[no-untyped-call]
        client.connection_pool.release(conn)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.payload_xadd", description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", default="1024,16384,102400,1048576")
    parser.add_argument("--megabytes", type=float, default=20.0)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args(sys.argv[1:] if argv is None else argv)
    client = redis.Redis.from_url(redis_url(DB))
    print("| value | written as | commandstats µs/call | Redis CPU µs/value | wall µs/value |")
    print("|---|---|---|---|---|")
    try:
        for size in (int(s) for s in args.sizes.split(",")):
            value = os.urandom(size // 2 + 1).hex()[:size].encode()
            n = max(50, int(args.megabytes * 1e6 / size))
            got = interleaved(WAYS, args.runs, partial(sample, client, value=value, n=n))
            for way in WAYS:
                usec, cpu, wall = ([s[i] for s in got[way]] for i in range(3))
                print(f"| {size:,} B | {way} | {spread(usec)} | {spread(cpu)} | {spread(wall)} |", flush=True)
    finally:
        client.flushdb()
        client.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
