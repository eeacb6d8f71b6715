"""The bare redis-py drain loop, no framework: what Python itself allows.

One process: XREADGROUP up to 128 entries, json.loads each, call the task its headers name, then
one pipeline with XACK (and, with results, one SET with expiry per task). Run as
``python -m bench.adapters.raw_worker``; the harness starts one per worker process.
"""

from __future__ import annotations

import json
import os
import signal
import uuid
from collections.abc import Callable
from types import FrameType
from typing import Any

import redis

from bench.adapters.base import env_queues, env_results, record_latency

GROUP = "bench"
BATCH = 128
RESULT_TTL = 86400


def noop() -> None:
    return None


FUNCTIONS: dict[str, Callable[..., Any]] = {"noop": noop, "stamp": record_latency}
_running = True


def _stop(signum: int, frame: FrameType | None) -> None:
    global _running
    _running = False


def main() -> None:
    signal.signal(signal.SIGTERM, _stop)
    client = redis.Redis.from_url(os.environ["BENCH_REDIS_URL"])
    store_results = env_results()
    streams: dict[Any, Any] = {q: ">" for q in env_queues()}
    consumer = f"raw-{os.getpid()}-{uuid.uuid4().hex[:6]}"
    while _running:
        replies: Any = client.xreadgroup(GROUP, consumer, streams, count=BATCH, block=200)
        if not replies:
            continue
        pipe = client.pipeline(transaction=False)
        for stream, entries in replies:
            ids = []
            for entry_id, fields in entries:
                message = json.loads(fields[b"m"])
                headers = message["headers"]
                args, kwargs, _embed = message["body"]
                result = FUNCTIONS[headers["task"]](*args, **kwargs)
                if store_results:
                    payload = json.dumps({"status": "SUCCESS", "result": result, "task_id": headers["id"]})
                    pipe.set(f"celery-task-meta-{headers['id']}", payload, ex=RESULT_TTL)
                ids.append(entry_id)
            pipe.xack(stream, GROUP, *ids)
        pipe.execute()


if __name__ == "__main__":
    main()
