"""Timing, percentiles, waiting with deadlines and process-tree memory."""

from __future__ import annotations

import math
import statistics
import time
from collections.abc import Callable, Iterable, Sequence
from typing import Any, TypeVar

import psutil  # type: ignore[import-untyped,unused-ignore]

Way = TypeVar("Way")
Sample = TypeVar("Sample")


class BenchTimeout(RuntimeError):
    """A bounded wait ran out: the library did not finish the work in time."""


def percentile(values: Sequence[float], q: float) -> float:
    """The q-th percentile (0..100) with linear interpolation between closest ranks."""
    if not values:
        return math.nan
    ordered = sorted(values)
    position = (len(ordered) - 1) * q / 100.0
    low = math.floor(position)
    high = math.ceil(position)
    if low == high:
        return ordered[low]
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def median(values: Sequence[float]) -> float:
    finite = [v for v in values if not math.isnan(v)]
    return statistics.median(finite) if finite else math.nan


def spread(values: Sequence[float], digits: int = 1) -> str:
    """A table cell of several runs: "median (min-max)"; the median alone for one run."""
    if not values:
        return "—"
    mid = median(values)
    if len(values) == 1:
        return f"{mid:,.{digits}f}"
    return f"{mid:,.{digits}f} ({min(values):,.{digits}f}-{max(values):,.{digits}f})"


def interleaved(ways: Sequence[Way], runs: int, sample: Callable[[Way], Sample]) -> dict[Way, list[Sample]]:
    """``sample(way)`` for every way in each run, the order reversed every other run: a drift
    of the machine's load over the runs falls on every way alike."""
    got: dict[Way, list[Sample]] = {way: [] for way in ways}
    for run in range(runs):
        for way in ways if run % 2 else ways[::-1]:
            got[way].append(sample(way))
    return got


def timed(action: Callable[[], object]) -> float:
    """Seconds the action took (perf_counter)."""
    started = time.perf_counter()
    action()
    return time.perf_counter() - started


def wait_until(condition: Callable[[], bool], timeout: float, what: str, interval: float = 0.005) -> None:
    """Poll ``condition`` until it holds; raise BenchTimeout after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise BenchTimeout(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(interval)


MAX_POLL = 0.25  # seconds: the longest sleep between two counts of a drain
ESTIMATE_AFTER = 0.1  # share of a drain done before its rate so far sets the next count


def drain_rate(remaining: Callable[[], int], total: int, timeout: float, interval: float = 0.002) -> float:
    """Tasks per second while ``total`` queued tasks are consumed.

    The clock starts at the last poll that still saw all ``total`` tasks (so worker start-up
    is not counted, and the error is at most one poll interval against us) and stops at the
    first poll that sees none left. ``remaining`` counts queued plus claimed-but-unacked.
    """
    deadline = time.monotonic() + timeout
    started = time.perf_counter()
    left = remaining()
    while left >= total:
        if time.monotonic() > deadline:
            raise BenchTimeout(f"workers did not start consuming within {timeout:.0f}s")
        started = time.perf_counter()
        time.sleep(interval)
        left = remaining()
    while left > 0:
        if time.monotonic() > deadline:
            raise BenchTimeout(f"drain not finished within {timeout:.0f}s ({left} of {total} left)")
        time.sleep(_next_poll(total - left, left, time.perf_counter() - started, interval))
        left = remaining()
    return total / (time.perf_counter() - started)


def _next_poll(done: int, left: int, elapsed: float, interval: float) -> float:
    """A quarter of the time the drain so far says is left (at most MAX_POLL), at least
    ``interval``: a count that costs the server (one command per queue over a thousand
    queues) is not run every interval of the drain, while the last poll still lands within
    an interval of the end unless the rest drains four times faster than the start did.
    Until ESTIMATE_AFTER of the drain is done, every ``interval``: a worker that acks in
    batches shows its first batch's few tasks in the first milliseconds, and a rate taken
    from those said 0.25 s were left of a 0.17 s drain (100 KB arguments, acks 40 at a time,
    measured 387.5 MB/s every time that happened)."""
    if done <= 0 or elapsed <= 0 or done < ESTIMATE_AFTER * (done + left):
        return interval
    return max(interval, min(MAX_POLL, 0.25 * left * elapsed / done))


def count_round_trips(action: Callable[[], object]) -> int:
    """How many times this process sent something to Redis while ``action`` ran.

    Counts calls of redis-py's ``send_packed_command`` (sync and asyncio clients): a pipeline
    is one send, so this is the number of network round trips the client made.
    """
    import redis.asyncio.connection as async_connection
    import redis.connection as sync_connection

    sent = 0
    patched: list[tuple[Any, Any]] = []
    for cls in (sync_connection.AbstractConnection, async_connection.AbstractConnection):
        original = cls.send_packed_command
        patched.append((cls, original))

        def counting(self: Any, *args: Any, __original: Any = original, **kwargs: Any) -> Any:
            nonlocal sent
            sent += 1
            return __original(self, *args, **kwargs)

        cls.send_packed_command = counting  # type: ignore[method-assign]
    try:
        action()
    finally:
        for cls, original in patched:
            cls.send_packed_command = original  # type: ignore[method-assign,unused-ignore]
    return sent


def tree_rss(pids: Iterable[int]) -> int:
    """Resident set size in bytes, summed over each process and all its descendants."""
    return _tree_sum(pids, lambda proc: int(proc.memory_info().rss))


def tree_pss(pids: Iterable[int]) -> int:
    """Proportional set size in bytes (pages shared by forked processes split between them),
    summed over the trees: what the workers really cost; 0 where the OS does not report it."""
    return _tree_sum(pids, lambda proc: int(getattr(proc.memory_full_info(), "pss", 0)))


def tree_cpu(pids: Iterable[int]) -> float:
    """CPU seconds (user + system) used so far, summed over the trees' live processes."""
    return _tree_sum(pids, lambda proc: int(1e6 * sum(proc.cpu_times()[:2]))) / 1e6


def _tree_sum(pids: Iterable[int], size: Callable[[Any], int]) -> int:
    total = 0
    for pid in pids:
        try:
            root = psutil.Process(pid)
            members = [root, *root.children(recursive=True)]
        except psutil.NoSuchProcess:
            continue
        for proc in members:
            try:
                total += size(proc)
            except (psutil.NoSuchProcess, psutil.AccessDenied):
                continue
    return total


def tree_size(pids: Iterable[int]) -> int:
    """How many processes the trees hold (to check a worker really runs its processes)."""
    count = 0
    for pid in pids:
        try:
            count += 1 + len(psutil.Process(pid).children(recursive=True))
        except psutil.NoSuchProcess:
            continue
    return count
