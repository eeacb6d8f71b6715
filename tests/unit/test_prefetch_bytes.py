"""worker_prefetch_bytes: a fetch that would hold more message bytes than that takes fewer."""

from __future__ import annotations

import time
import uuid
from typing import Any

from taskq import TaskQ
from taskq.worker.consumer import FETCH_BYTES
from tests.unit.conftest import inline_worker

MB = 1024 * 1024


def make_app(prefetch_bytes: int) -> TaskQ:
    name = uuid.uuid4().hex
    return TaskQ(
        "tests", broker=f"memory://{name}", backend=f"memory://{name}", recovery_time=5.0,
        worker_prefetch_bytes=prefetch_bytes, worker_prefetch_max=64, task_ignore_result=True,
    )  # fmt: skip


def run_and_record_fetches(app: TaskQ, payload: str, n: int) -> tuple[list[int], list[int]]:
    """Run ``n`` tasks carrying ``payload``; the count each fetch asked for and got."""
    ran: list[int] = []

    @app.task(name="t.big")
    def big(data: str) -> None:
        ran.append(len(data))

    big.delay_many([(payload,)] * n)
    asked: list[int] = []
    got: list[int] = []
    fetch = app.broker.fetch

    def recording(queues: Any, max_count: int, timeout: float) -> Any:
        batch = fetch(queues, max_count, timeout)
        if batch:
            asked.append(max_count)
            got.append(len(batch))
        return batch

    app.broker.fetch = recording  # type: ignore[method-assign]
    with inline_worker(app, prefetch=4):
        deadline = time.monotonic() + 60
        while len(ran) < n and time.monotonic() < deadline:
            time.sleep(0.01)
    assert ran == [len(payload)] * n
    return asked, got


def test_big_messages_are_claimed_few_at_a_time() -> None:
    # Given a 3 MB cap and 1 MB arguments
    asked, got = run_and_record_fetches(make_app(3 * MB), "x" * MB, 40)
    # Then the first fetch (nothing known yet) takes the prefetch of 4, every later one at most 3
    assert asked[0] == 4
    assert asked[1:] and max(asked[1:]) <= 3 and max(got[1:]) <= 3


def test_a_message_larger_than_the_cap_still_runs_one_at_a_time() -> None:
    asked, _ = run_and_record_fetches(make_app(MB // 2), "x" * MB, 6)
    assert asked[1:] and set(asked[1:]) == {1}


def test_small_messages_keep_growing_batches_and_zero_means_no_cap() -> None:
    asked, _ = run_and_record_fetches(make_app(3 * MB), "x", 2000)
    assert max(asked) == 64  # tiny messages: the cap never binds
    asked, _ = run_and_record_fetches(make_app(0), "x" * MB, 40)
    assert max(asked[1:]) > 4  # no cap: batches grow as usual


def test_a_fetch_brings_at_most_fetch_bytes_however_high_the_cap() -> None:
    # Given the default 64 MB cap and arguments a third of FETCH_BYTES (a fetch's reply costs
    # Redis more per byte as it grows past a few MB: consumer.FETCH_BYTES)
    size = FETCH_BYTES // 3 - 1024  # with the body's JSON around it, three fit
    asked, got = run_and_record_fetches(make_app(64 * MB), "x" * size, 15)
    # Then every fetch after the first asks for what fits in FETCH_BYTES, no more
    assert asked[1:] and set(asked[1:]) == {3}
    assert max(got[1:]) * size <= FETCH_BYTES
