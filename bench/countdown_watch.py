"""Where the countdown bench's tasks wait, sampled twice a second beside ``bench.backlog --countdown``.

    BENCH_REDIS=redis://127.0.0.1:N python -m bench.countdown_watch [--seconds 900] [--out FILE]

Each sample counts, on the bench's queue: delayed messages already due but not yet moved to
their lane (promotion lag), entries moved but not yet claimed by a worker (the group's lag),
entries claimed and not yet acked (the workers' prefetch), and tasks that recorded their
lateness. At the end (Ctrl-C, or ``--seconds``) it prints, for the last countdown whose tasks
ran, the maximum of each and the rate at which tasks ran while any did: if the due-but-not-
moved count stays small while the unclaimed count grows, the tasks are late because the
workers run fewer a second than come due, not because promotion lags.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

import redis

from bench.adapters.base import QUEUE, redis_url
from bench.adapters.taskq_app import DB
from bench.countdown_app import LATENESS_KEY

PREFIX = "taskq:"


def sample(client: redis.Redis) -> dict[str, float]:
    now = time.time()
    pipe = client.pipeline(transaction=False)
    pipe.zcount(f"{PREFIX}q:{QUEUE}:delayed", "-inf", now)
    pipe.xinfo_groups(f"{PREFIX}q:{QUEUE}:0")
    pipe.llen(LATENESS_KEY)
    due, groups, done = pipe.execute(raise_on_error=False)
    group: dict[str, Any] = groups[0] if isinstance(groups, list) and groups else {}
    return {
        "at": now,
        "due_not_moved": float(due) if isinstance(due, int) else 0.0,
        "moved_not_claimed": float(group.get("lag") or 0),
        "claimed_not_acked": float(group.get("pending") or 0),
        "done": float(done) if isinstance(done, int) else 0.0,
    }


def summary(samples: list[dict[str, float]]) -> str:
    if not samples:
        return "no samples"
    lines = [
        f"max {k}: {max(s[k] for s in samples):,.0f}"
        for k in ("due_not_moved", "moved_not_claimed", "claimed_not_acked")
    ]
    running = [s for s in samples if s["done"] > 0]
    if len(running) >= 2 and running[-1]["at"] > running[0]["at"]:
        rate = (running[-1]["done"] - running[0]["done"]) / (running[-1]["at"] - running[0]["at"])
        lines.append(f"tasks run: {rate:,.0f}/s from the first to the last sample that saw any")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.countdown_watch", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    parser.add_argument("--seconds", type=float, default=900.0)
    parser.add_argument("--out", type=Path, help="also write every sample, one line each")
    args = parser.parse_args(sys.argv[1:] if argv is None else argv)
    client = redis.Redis.from_url(redis_url(DB))
    samples: list[dict[str, float]] = []  # since the last flush of the bench's database
    last_run: list[dict[str, float]] = []  # the samples of the last countdown whose tasks ran
    deadline = time.monotonic() + args.seconds
    try:
        while time.monotonic() < deadline:
            s = sample(client)
            if samples and s["done"] < samples[-1]["done"]:  # flushed: that countdown is over
                last_run, samples = samples, []
            samples.append(s)
            time.sleep(0.5)
    except KeyboardInterrupt:
        pass
    if any(s["done"] > 0 for s in samples):
        last_run = samples
    if args.out:
        args.out.write_text("".join(" ".join(f"{k}={v:.2f}" for k, v in s.items()) + "\n" for s in last_run))
    print(summary(last_run))
    return 0


if __name__ == "__main__":
    sys.exit(main())
