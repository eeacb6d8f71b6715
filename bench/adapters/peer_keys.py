"""What the harness reads of arq's and Taskiq's Redis keys, without importing either library:
those two run in their own virtualenvs (bench/venvs.py) when they cannot be installed beside
taskq's redis-py, and the harness polls their queues from here."""

from __future__ import annotations

import redis

TASKIQ_DB = 15
TASKIQ_STREAM = "taskiq"  # taskiq-redis's default queue and consumer-group names
TASKIQ_GROUP = "taskiq"
ARQ_DB = 14
ARQ_QUEUE = "arq:queue"  # arq's default queue (a sorted set of job ids)


def taskiq_prepare(client: redis.Redis) -> None:
    """What the broker's startup declares; a flush removes it. "$": like taskiq, only messages
    added after the group exists are delivered."""
    client.xgroup_create(TASKIQ_STREAM, TASKIQ_GROUP, id="$", mkstream=True)


def taskiq_remaining(client: redis.Redis) -> int:
    """Queued (the group's lag) plus delivered and not acked yet (pending)."""
    if not client.exists(TASKIQ_STREAM):
        return 0
    groups = client.xinfo_groups(TASKIQ_STREAM)
    return sum(int(g["lag"] or 0) + int(g["pending"]) for g in groups)


def arq_remaining(client: redis.Redis) -> int:
    return int(client.zcard(ARQ_QUEUE))  # a job id leaves the set when its job finishes
