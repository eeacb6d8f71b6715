"""Raw redis-py baseline: one XADD round trip per enqueue, pipelined XADD for bulk.

Each message is JSON shaped like a protocol-v2 task message (headers, body, properties;
about 500 bytes), built per call from a template with a counter id, so the worker's
json.loads has a realistic amount to parse. This is the floor a framework pays on top of.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Sequence
from itertools import count

from bench.adapters.base import QUEUE, Adapter
from bench.adapters.raw_worker import GROUP

CHUNK = 1000
HEADERS = {
    "lang": "py",
    "task": "",
    "id": "",
    "root_id": "",
    "parent_id": None,
    "group": None,
    "retries": 0,
    "eta": None,
    "expires": None,
    "timelimit": [None, None],
    "argsrepr": "()",
    "kwargsrepr": "{}",
    "origin": "gen1234@bench-host",
}
EMBED = {"callbacks": None, "errbacks": None, "chain": None, "chord": None}
PROPERTIES = {
    "correlation_id": "",
    "reply_to": "",
    "content_type": "application/json",
    "content_encoding": "utf-8",
    "priority": 0,
    "delivery_info": {"routing_key": "bench"},
}


class RawAdapter(Adapter):
    name = "raw"
    db = 9
    bulk_api = "pipelined XADD, 1,000 per round trip"
    multi_queue = True
    worker_note = "2 processes of the bare XREADGROUP-128 + pipelined XACK loop"

    def __init__(self) -> None:
        super().__init__()
        self._ids = count()

    def version(self) -> str:
        import redis

        return f"redis-py {redis.__version__}"

    def _message(self, task: str, *args: float) -> bytes:
        task_id = f"raw-{next(self._ids)}"
        headers = {**HEADERS, "task": task, "id": task_id, "root_id": task_id, "argsrepr": repr(args)}
        body = [list(args), {}, EMBED]
        return json.dumps(
            {"headers": headers, "body": body, "properties": {**PROPERTIES, "correlation_id": task_id}}
        ).encode()

    def _ensure_groups(self, queues: Sequence[str]) -> None:
        for queue in queues:
            if not self.redis.exists(queue):
                self.redis.xgroup_create(queue, GROUP, id="0", mkstream=True)

    def enqueue_one(self, n: int, queues: Sequence[str] = (QUEUE,), with_results: bool = False) -> None:
        self._ensure_groups(queues)
        xadd = self.redis.xadd
        for i in range(n):
            xadd(queues[i % len(queues)], {"m": self._message("noop")})

    def enqueue_bulk(self, n: int, queues: Sequence[str] = (QUEUE,), with_results: bool = False) -> None:
        self._ensure_groups(queues)
        for start in range(0, n, CHUNK):
            pipe = self.redis.pipeline(transaction=False)
            for i in range(start, min(n, start + CHUNK)):
                pipe.xadd(queues[i % len(queues)], {"m": self._message("noop")})
            pipe.execute()

    def enqueue_stamp(self) -> None:
        self._ensure_groups([QUEUE])
        self.redis.xadd(QUEUE, {"m": self._message("stamp", time.time())})

    def start_workers(self, processes: int, with_results: bool = False, queues: Sequence[str] = (QUEUE,)) -> None:
        self._ensure_groups(queues)
        super().start_workers(processes, with_results, queues)

    def worker_commands(self, processes: int, queues: Sequence[str]) -> list[list[str]]:
        return [[sys.executable, "-m", "bench.adapters.raw_worker"] for _ in range(processes)]

    def remaining(self, queues: Sequence[str] = (QUEUE,)) -> int:
        left = 0
        for queue in queues:
            if not self.redis.exists(queue):
                continue
            for group in self.redis.xinfo_groups(queue):
                left += int(group["lag"] or 0) + int(group["pending"])
        return left
