"""bench.measure.drain_rate stops its clock within a poll of the drain's end, also when the
first count it sees moved by only a handful of tasks (a worker that acks in batches)."""

from __future__ import annotations

import time
from collections.abc import Callable

import pytest

from bench import measure

RAMP = 0.02  # seconds


def batched_drain(total: int, first: int, seconds: float) -> tuple[float, Callable[[], int]]:
    """A queue of ``total`` that loses ``first`` tasks at once, nothing more for RAMP seconds
    (the batches grow), then the rest evenly until ``seconds`` (in batches of 40, as acks
    arrive); returns when it ends and the counter."""
    started = time.perf_counter()
    end = started + seconds

    def remaining() -> int:
        now = time.perf_counter()
        if now >= end:
            return 0
        rest = total - first
        share = max(0.0, now - started - RAMP) / (seconds - RAMP)
        return rest - int(rest * share) // 40 * 40

    return end, remaining


@pytest.mark.parametrize("interval", [0.002, 0.005])
def test_the_clock_stops_within_a_poll_of_the_end_after_a_small_first_batch(interval: float) -> None:
    # Given 1,000 tasks, four gone at once, the rest from 20 ms to 0.12 s
    end, remaining = batched_drain(1000, 4, 0.12)
    # When the drain is timed
    rate = measure.drain_rate(remaining, 1000, timeout=10, interval=interval)
    stopped = time.perf_counter()
    # Then it ended within a few polls of the real end, and the rate is the real one
    assert stopped - end < 0.06  # (a rate taken from the first four: 0.13 s late)
    assert rate > 1000 / (0.12 + 0.06)


def test_a_long_drain_is_counted_less_often_once_its_rate_is_known() -> None:
    # Given a drain of 0.6 s
    counts = 0
    _, inner = batched_drain(10_000, 0, 0.6)

    def remaining() -> int:
        nonlocal counts
        counts += 1
        return inner()

    # When it is timed with a 2 ms interval
    measure.drain_rate(remaining, 10_000, timeout=10, interval=0.002)
    # Then far fewer counts ran than one every interval (300)
    assert counts < 150
