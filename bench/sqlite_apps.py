"""The apps the SQLite bench's workers import: taskq on ``sqlite:///``, Huey's SqliteHuey,
and the bare sqlite3 loop (``python -m bench.sqlite_apps raw``). The file comes from
``BENCH_SQLITE_PATH``, which bench.sqlite_peers sets for the producer and every worker.
"""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import sys
import time
from types import FrameType

from huey import SqliteHuey  # type: ignore[import-untyped,unused-ignore]

from bench.adapters.raw import EMBED, HEADERS, PROPERTIES
from taskq import TaskQ

QUEUE = "bench"
PATH = os.environ.get("BENCH_SQLITE_PATH", "bench.db")
RAW_BATCH = 128  # rows a raw worker takes per statement (taskq's prefetch is about the same)

app = TaskQ("bench", broker=f"sqlite:///{os.path.abspath(PATH)}", backend="none",
            task_default_queue=QUEUE, task_ignore_result=True)  # fmt: skip
huey = SqliteHuey(QUEUE, filename=os.path.abspath(PATH), results=False)


@app.task(name="bench.noop")
def noop() -> None:
    return None


@huey.task(name="bench.noop")  # type: ignore[untyped-decorator,unused-ignore]
def huey_noop() -> None:
    return None


def raw_noop() -> None:
    return None


# -- the bare loop: a table of JSON payloads, taken and deleted 128 at a time -----------------

RAW_SCHEMA = "CREATE TABLE IF NOT EXISTS raw_queue (id INTEGER PRIMARY KEY, payload BLOB NOT NULL)"
# Shaped like a protocol-v2 message (about 500 bytes), as bench.adapters.raw's Redis messages.
RAW_PAYLOAD = json.dumps(
    {"headers": {**HEADERS, "task": "noop", "id": "0" * 36}, "body": [[], {}, EMBED], "properties": PROPERTIES}
).encode()


def raw_connect() -> sqlite3.Connection:
    conn = sqlite3.connect(os.path.abspath(PATH), timeout=30, isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=NORMAL")
    conn.execute(RAW_SCHEMA)
    return conn


def raw_worker() -> None:
    """One process: DELETE ... RETURNING up to RAW_BATCH rows, json.loads each, call the task."""
    running = True

    def stop(signum: int, frame: FrameType | None) -> None:
        nonlocal running
        running = False

    signal.signal(signal.SIGTERM, stop)
    conn = raw_connect()
    take = "DELETE FROM raw_queue WHERE id IN (SELECT id FROM raw_queue ORDER BY id LIMIT ?) RETURNING payload"
    while running:
        rows = conn.execute(take, (RAW_BATCH,)).fetchall()
        if not rows:
            time.sleep(0.01)
            continue
        for (payload,) in rows:
            message = json.loads(payload)
            args, kwargs, _embed = message["body"]
            raw_noop(*args, **kwargs)


if __name__ == "__main__" and sys.argv[1:] == ["raw"]:
    raw_worker()
