"""What a round trip costs the Redis server beside its commands: ``python -m bench.round_trip_cost``.

Two ``EVALSHA "return 0"`` sent --pairs times one after the other (two requests), then as
many times in one pipeline (one request), in turns for --rounds rounds: the Redis process's
CPU (``/proc/<pid>/stat``, so the server must run on this machine) per pair, median (min-max).
The difference is what one more request costs the server (read, parse, reply, event loop):
what a worker would save by carrying a batch's acks in its next fetch's request. Use a server
of the bench's own (``BENCH_REDIS``, db 3).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys

import redis

from bench.adapters.base import redis_url


def server_cpu(pid: int) -> float:
    """User + system CPU seconds of process ``pid``."""
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.round_trip_cost", description=__doc__)
    parser.add_argument("--pairs", type=int, default=20000)
    parser.add_argument("--rounds", type=int, default=4)
    args = parser.parse_args()
    client = redis.Redis.from_url(redis_url(3))
    pid = int(client.info("server")["process_id"])
    sha = client.script_load("return 0")
    spent: dict[str, list[float]] = {"two requests": [], "one pipeline": []}
    for _ in range(args.rounds):
        for kind, per_pair in spent.items():
            before = server_cpu(pid)
            for _ in range(args.pairs):
                if kind == "two requests":
                    client.evalsha(sha, 0)
                    client.evalsha(sha, 0)
                else:
                    pipe = client.pipeline(transaction=False)
                    pipe.evalsha(sha, 0)
                    pipe.evalsha(sha, 0)
                    pipe.execute()
            per_pair.append((server_cpu(pid) - before) / args.pairs * 1e6)
    for kind, per_pair in spent.items():
        spread = f"{statistics.median(per_pair):5.1f} ({min(per_pair):.1f}-{max(per_pair):.1f})"
        print(f"{kind:13} {spread} µs of Redis CPU a pair")
    client.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
