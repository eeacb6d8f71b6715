"""bench.measure.drain_rate stops its clock within a poll of the drain's end, also when the
first count it sees moved by only a handful of tasks (a worker that acks in batches).

The drains here run on a virtual clock (measure's ``time`` swapped for one whose sleep moves
it on), so the figures are exact whatever the machine's load."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from bench import measure

RAMP = 0.02  # seconds


class VirtualTime:
    """perf_counter, monotonic and sleep of a clock that only sleeping moves."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.counts = 0

    def perf_counter(self) -> float:
        return self.now

    def monotonic(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds


def batched_drain(clock: VirtualTime, total: int, first: int, seconds: float) -> Callable[[], int]:
    """A queue of ``total`` that loses ``first`` tasks at once, nothing more for RAMP seconds
    (the batches grow), then the rest evenly until ``seconds`` (in batches of 40, as acks
    arrive)."""
    started = clock.now

    def remaining() -> int:
        clock.counts += 1
        elapsed = clock.now - started
        if elapsed >= seconds:
            return 0
        rest = total - first
        share = max(0.0, elapsed - RAMP) / (seconds - RAMP)
        return rest - int(rest * share) // 40 * 40

    return remaining


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> VirtualTime:
    virtual = VirtualTime()
    monkeypatch.setattr(measure, "time", virtual)
    return virtual


@pytest.mark.parametrize("interval", [0.002, 0.005])
def test_the_clock_stops_within_a_poll_of_the_end_after_a_small_first_batch(
    clock: VirtualTime, interval: float
) -> None:
    # Given 1,000 tasks, four gone at once, the rest from 20 ms to 0.12 s
    remaining = batched_drain(clock, 1000, 4, 0.12)
    # When the drain is timed
    rate = measure.drain_rate(remaining, 1000, timeout=10, interval=interval)
    # Then it is clocked within a poll of its 0.12 s (a rate taken from the first four tasks
    # slept 0.25 s: 0.25 s clocked, 4,000 tasks/s)
    assert 1000 / (0.12 + interval) <= rate <= 1000 / 0.12


def test_a_long_drain_is_counted_less_often_once_its_rate_is_known(clock: VirtualTime) -> None:
    # Given a drain of 0.6 s
    remaining = batched_drain(clock, 10_000, 0, 0.6)
    # When it is timed with a 2 ms interval
    rate = measure.drain_rate(remaining, 10_000, timeout=10, interval=0.002)
    # Then far fewer counts ran than one every interval (300), and the rate is still right:
    # the clock starts at the last count that saw every task (after the ramp)
    assert clock.counts < 150
    assert 10_000 / (0.58 + 0.004) <= rate <= 10_000 / (0.58 - 0.004)
