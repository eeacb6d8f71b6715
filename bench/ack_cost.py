"""What one Redis ack of a batch costs the server, and which part: ``python -m bench.ack_cost``.

A stream with 64 entries claimed by one consumer and 64 by another (the drain's two
children), then an ack of the first 64 as the broker sends it (the ACK script), beside the
same script taking the owner check's long way every time (as before 2026-12-06), without
the owner check, a script that only returns (the cost of calling a script with these
arguments) and the MULTI of XACK + XDEL that 69ac068 sent. Server µs per call from ``INFO
commandstats`` (evalsha, or exec): median of --calls calls of each, the variants taking
turns call by call. Use a server of the bench's own (``BENCH_REDIS``, db 3): the counters
are reset for each call.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from typing import Any

import redis

from bench.adapters.base import redis_url
from taskq.brokers.redis.scripts import ACK, GROUP

STREAM = "bench-ack:0"  # the ACK script reads the lane from the key's last digit
# The ACK script's owner check, each part replaced by what trusts the ids (all owned).
SHORT_WAY = "local p = redis.pcall('XPENDING', key, group, low, high, n, consumer)"
OWNER_CHECK = {
    SHORT_WAY: "local p = nil",
    "local same = type(p) == 'table' and not p.err and #p == n": "local same = true",
    "if p[j][1] ~= ARGV[i + 2 + j] then same = false break end": "",
}


def _trusting(source: str) -> str:
    for part, instead in OWNER_CHECK.items():
        assert part in source, part  # the script changed: so must this bench
        source = source.replace(part, instead)
    return source


VARIANTS = {
    "ACK script": ACK,
    # As before 2026-12-06: the ids of ours over the range always turned into a Lua set.
    "full check every time": ACK.replace(SHORT_WAY, "local p = nil"),
    "without the owner check": _trusting(ACK),
    "a script that returns 0": "return 0",
}


def claimed(client: redis.Redis, batch: int) -> list[str]:
    """A fresh stream: ``batch`` entries claimed by c1 (returned), as many by c2."""
    client.delete(STREAM)
    client.xgroup_create(STREAM, GROUP, id="0", mkstream=True)
    pipe = client.pipeline(transaction=False)
    for _ in range(2 * batch):
        pipe.xadd(STREAM, {"m": b"x" * 99})  # about a compact entry's size
    pipe.execute()
    mine: Any = client.xreadgroup(GROUP, "c1", {STREAM: ">"}, count=batch)
    client.xreadgroup(GROUP, "c2", {STREAM: ">"}, count=batch)
    return [entry_id.decode() for entry_id, _ in mine[0][1]]


def usec(client: redis.Redis, command: str) -> int:
    return int(client.info("commandstats")[f"cmdstat_{command}"]["usec"])


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.ack_cost", description=__doc__)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--calls", type=int, default=600)
    args = parser.parse_args()
    client = redis.Redis.from_url(redis_url(3))
    scripts = {name: client.register_script(source) for name, source in VARIANTS.items()}
    names = [*scripts, "MULTI XACK XDEL (69ac068)"]
    spent: dict[str, list[int]] = {name: [] for name in names}
    try:
        # Call by call, the variants in turn (the order rotating): load on a shared machine
        # then hits each alike, and the median per call shrugs off its spikes.
        for call in range(args.calls):
            for name in names[call % len(names) :] + names[: call % len(names)]:
                ids = claimed(client, args.batch)
                client.config_resetstat()
                if name in scripts:
                    keys = [STREAM, "bench-ack:cursor", "bench-ack:claims"]
                    scripts[name](keys=keys, args=[GROUP, "c1", repr(time.time()), len(ids), ids[0], ids[-1], *ids])
                    spent[name].append(usec(client, "evalsha"))
                else:
                    pipe = client.pipeline(transaction=True)
                    pipe.xack(STREAM, GROUP, *ids)
                    pipe.xdel(STREAM, *ids)
                    pipe.execute()
                    spent[name].append(usec(client, "exec"))
        for name, calls in spent.items():
            low, _, high = statistics.quantiles(calls, n=4)
            per_call = statistics.median(calls)
            print(
                f"{name:28} {per_call:7.1f} µs a call (quartiles {low:.0f}-{high:.0f}), "
                f"{per_call / args.batch:5.2f} µs a message"
            )
    finally:
        client.delete(STREAM, "bench-ack:cursor", "bench-ack:claims")
        client.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
