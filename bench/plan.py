"""How much work each row does: the quick profile (one run, small counts) and the full one."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Plan:
    runs: int  # runs of each headline row, interleaved across libraries
    enqueue_one: int  # tasks enqueued with one call each
    enqueue_bulk: int  # tasks enqueued through the bulk API
    drain: int  # tasks queued before the workers start
    drain_slow: int  # the same, for libraries that drain below 500/s
    latency: int  # stamp tasks, LATENCY_GAP apart
    scaling: int  # tasks per scaling drain
    scaling_peers: bool  # also scale the peers (not only taskq and the raw baseline)
    memory: int  # tasks queued for the Redis memory row
    timeout: float  # upper bound on any single wait (drain, warm-up, latency)


LATENCY_GAP = 0.005  # seconds between stamp tasks
PROCESSES = 2  # worker processes for the headline rows
SCALING_PROCESSES = (1, 2, 4)
SCALING_QUEUES = (1, 4, 16)

QUICK = Plan(
    runs=1,
    enqueue_one=2_000,
    enqueue_bulk=5_000,
    drain=3_000,
    drain_slow=150,
    latency=100,
    scaling=2_000,
    scaling_peers=False,
    memory=5_000,
    timeout=40.0,
)

FULL = Plan(
    runs=5,
    enqueue_one=10_000,
    enqueue_bulk=20_000,
    drain=20_000,
    drain_slow=1_000,
    latency=500,
    scaling=10_000,
    scaling_peers=True,
    memory=100_000,
    timeout=180.0,
)
