"""Redis CPU per MB of the fetch script against the messages a fetch brings: why the worker
claims big messages a few at a time (taskq.worker.consumer.FETCH_BYTES).

    python -m bench.payload_fetch [--sizes 102400,1048576] [--counts 1,2,4,10,20] [--megabytes 40]

For each size and count: ``--megabytes`` of tasks queued on database 6 of ``BENCH_REDIS``,
fetched ``count`` at a time by the broker's own fetch and acked; the fetch script's share of
INFO commandstats (usec of EVALSHA) per MB, beside the same messages read by a bare
XREADGROUP of the same count (the copy through Lua is the difference).
"""

from __future__ import annotations

import argparse
import os
import sys
import time

import redis

from bench.adapters.base import env_url

DB = 6


def redis_usec(client: redis.Redis, command: str) -> int:
    return int(client.info("commandstats").get(f"cmdstat_{command}", {}).get("usec", 0))  # type: ignore[union-attr]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.payload_fetch", description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", default="102400,1048576")
    parser.add_argument("--counts", default="1,2,4,10,20")
    parser.add_argument("--megabytes", type=float, default=40.0)
    args = parser.parse_args(sys.argv[1:] if argv is None else argv)
    from taskq import TaskQ

    url = env_url(DB)
    client = redis.Redis.from_url(url)
    app = TaskQ("payload-fetch", broker=url, backend="none")

    @app.task(name="bench.payload_fetch")
    def task(data: str) -> None:
        pass

    print("| argument | messages a fetch | fetch script µs/MB (Redis) | bare XREADGROUP µs/MB (Redis) |")
    print("|---|---|---|---|")
    try:
        for size in (int(s) for s in args.sizes.split(",")):
            data = os.urandom(size // 2 + 1).hex()[:size]
            n = max(20, int(args.megabytes * 1e6 / size))
            for count in (int(c) for c in args.counts.split(",")):
                client.flushdb()
                for _ in range(n):
                    task.delay(data)
                client.config_resetstat()
                got = 0
                while got < n:
                    batch = app.broker.fetch(["celery"], count, 1.0)
                    got += len(batch)
                    if batch:
                        app.broker.ack(batch)
                script = redis_usec(client, "evalsha")
                client.flushdb()
                for _ in range(n):
                    client.xadd("bare", {"m": data})
                client.xgroup_create("bare", "g", "0")
                client.config_resetstat()
                for _ in range(-(-n // count)):
                    client.xreadgroup("g", "c", {"bare": ">"}, count=count)
                bare = redis_usec(client, "xreadgroup")
                mb = n * size / 1e6
                print(f"| {size:,} B | {count} | {script / mb:,.0f} | {bare / mb:,.0f} |", flush=True)
                time.sleep(0.1)
    finally:
        client.flushdb()
        client.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
