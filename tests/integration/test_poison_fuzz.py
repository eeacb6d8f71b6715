"""A seeded fuzzer: 10,000 random, mostly malformed envelopes per broker, stored raw (past
every producer-side check) and interleaved with good messages, through a real consumer loop
in this process. No consumer may crash; each fuzzed message is run or dead-lettered; every
good message runs once.

TASKQ_FUZZ_COUNT and TASKQ_FUZZ_SEED change the count and the seed (a failure names both).
The worker-subprocess variant, every pool, is in test_worker.py.
"""

from __future__ import annotations

import functools
import json
import os
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from taskq import TaskQ
from taskq.task import Task
from taskq.worker.consumer import Consumer
from tests.poison import Raw, dead_count, fuzz, inject, valid_doc
from tests.servers import require_rabbitmq, require_redis

pytestmark = pytest.mark.slow

COUNT = int(os.environ.get("TASKQ_FUZZ_COUNT", "10000"))
SEED = int(os.environ.get("TASKQ_FUZZ_SEED", "14"))
CONSUMERS = 4  # consumer loops in this process, as a threads pool runs them
GOOD_EVERY = 50  # one good message after every 50 fuzzed ones
TASK = "fuzz.record"
BUDGET = 240.0  # seconds for one broker's whole run: 3-17 s alone; a full CI run on 2 cores once took over 90


@functools.cache
def fuzzed_once(seed: int, count: int) -> list[Raw]:
    """The generator's output, made once for the four brokers (it takes seconds)."""
    return fuzz(seed, count, TASK)


@pytest.fixture(params=["memory", "sqlite", "redis", "rabbitmq"])
def fuzz_app(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[TaskQ]:
    name = uuid.uuid4().hex[:12]
    options: dict[str, Any] = {}
    cleanup = None
    if request.param == "memory":
        url = f"memory://{name}"
    elif request.param == "sqlite":
        url = f"sqlite:///{tmp_path}/broker.db"
    elif request.param == "redis":
        from tests.contract.redis_factories import delete_prefixed

        url, prefix = require_redis(), f"taskq-fuzz-{name}:"
        options = {"global_keyprefix": prefix}
        cleanup = lambda: delete_prefixed(url, prefix)  # noqa: E731
    else:
        from tests.contract.rabbitmq_factories import fresh_vhost

        vhost = fresh_vhost(require_rabbitmq())
        url = vhost.__enter__()
        cleanup = lambda: vhost.__exit__(None, None, None)  # noqa: E731
    app = TaskQ(
        "fuzz", broker=url, backend=f"memory://{name}", recovery_time=120.0, max_deliveries=5,
        broker_transport_options=options, worker_heartbeat_file=str(tmp_path / "hb"),
    )
    try:
        yield app
    finally:
        app.close()
        if cleanup is not None:
            cleanup()


def test_fuzzed_envelopes_never_stop_a_consumer(fuzz_app: TaskQ) -> None:
    app, queue = fuzz_app, "fuzz"
    ran: Counter[str] = Counter()
    ran_lock = threading.Lock()  # four consumer threads count here

    @app.task(name=TASK, bind=True, ignore_result=True)
    def record(self: Task[..., None], *args: Any, **kwargs: Any) -> None:
        with ran_lock:
            ran[self.request.id] += 1

    # Given COUNT fuzzed messages with a good one after every GOOD_EVERY, stored raw
    fuzzed = fuzzed_once(SEED, COUNT)
    good = [f"good-{i}" for i in range(COUNT // GOOD_EVERY + 1)]
    mixed: list[Raw] = []
    for i, raw in enumerate(fuzzed):
        if i % GOOD_EVERY == 0:
            mixed.append(Raw(valid_doc(TASK, good[i // GOOD_EVERY])))
        mixed.append(raw)
    mixed.append(Raw(valid_doc(TASK, good[-1])))
    started = time.monotonic()
    for start in range(0, len(mixed), 2000):
        inject(app.broker, queue, mixed[start : start + 2000])
    # When CONSUMERS consumer loops (a threads pool's) work through them
    consumers = [Consumer(app, [queue], prefetch=64) for _ in range(CONSUMERS)]
    crashed: list[BaseException] = []

    def run(consumer: Consumer) -> None:
        try:
            consumer.run()
        except BaseException as exc:
            crashed.append(exc)

    threads = [threading.Thread(target=run, args=(c,), daemon=True) for c in consumers]
    for thread in threads:
        thread.start()
    deadline = time.monotonic() + BUDGET

    def settled() -> int:  # fuzzed messages run plus dead letters
        with ran_lock:
            runs = sum(n for task_id, n in ran.items() if not task_id.startswith("good-"))
        return runs + dead_count(app.broker, queue)

    try:
        while not all(ran[g] for g in good) or app.broker.queue_length(queue) or settled() < COUNT:
            assert all(t.is_alive() for t in threads), f"a consumer died: {crashed!r} (seed {SEED}, count {COUNT})"
            assert time.monotonic() < deadline, f"not done in {BUDGET}s (seed {SEED}, count {COUNT})"
            time.sleep(0.1)
    finally:
        for consumer in consumers:
            consumer.warm_stop()
        for thread in threads:
            thread.join(10)
    took = time.monotonic() - started
    # Then no crash, nothing left, each good message ran once, each fuzzed one ran or is dead
    assert not crashed and not any(t.is_alive() for t in threads)
    assert sum(c.unexpected_errors for c in consumers) == 0
    dead = dead_count(app.broker, queue)
    assert all(d.reason for d in app.broker.dead_letters(queue, limit=200))
    not_once = {g: ran[g] for g in good if ran[g] != 1}
    assert not not_once, f"good messages ran other than once: {not_once} (seed {SEED}, count {COUNT})"
    fuzzed_runs = sum(n for task_id, n in ran.items() if not task_id.startswith("good-"))
    assert fuzzed_runs + dead == COUNT, f"seed {SEED}: {fuzzed_runs} ran + {dead} dead != {COUNT}"
    assert dead > COUNT // 2 and fuzzed_runs > 0  # the generator makes both kinds
    print(json.dumps({"broker": app.conf.broker_url.split(":")[0], "count": COUNT, "dead": dead,
                      "ran": fuzzed_runs, "seconds": round(took, 1)}))
