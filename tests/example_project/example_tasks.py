"""A user's project, as the integration tests' workers import it (-A example_tasks:app).

Tasks record each start and finish as a line in TASKQ_TEST_MARKS (one O_APPEND write per
line, atomic across processes), so tests count runs without trusting the worker's word.
"""

from __future__ import annotations

import hashlib
import os
import signal
import time

from taskq import SoftTimeLimitExceeded, TaskQ
from taskq.task import Task

app = TaskQ("example_tasks")  # broker and backend from TASKQ_BROKER_URL / TASKQ_RESULT_BACKEND


def mark(event: str, key: str) -> None:
    path = os.environ.get("TASKQ_TEST_MARKS")
    if path:
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            os.write(fd, f"{event} {key} {os.getpid()}\n".encode())
        finally:
            os.close(fd)


@app.task
def add(a: int, b: int) -> int:
    return a + b


# -- canvas (tests/integration/test_canvas*.py) --------------------------------------------
@app.task
def mul(a: int, b: int) -> int:
    return a * b


@app.task
def collect(values: list[int], key: str) -> list[int]:
    """A chord body that records each run, so tests count how often the body ran."""
    mark("done", key)
    return values


@app.task
def fail(*args: object) -> None:
    raise ValueError(f"failed on {args!r}")


@app.task
def slow_add(a: int, b: int, key: str, seconds: float) -> int:
    mark("start", key)
    time.sleep(seconds)
    mark("done", key)
    return a + b


@app.task
def sleep_then(key: str, seconds: float) -> str:
    mark("start", key)
    time.sleep(seconds)
    mark("done", key)
    return key


@app.task
def hold_gil(key: str, seconds: float) -> float:
    """Hold the GIL for about ``seconds`` in ONE C call that never releases it (``sum`` over a
    ``range``: no bytecode runs, so the interpreter never hands the GIL to another thread).
    Sized from this machine's speed, measured just before; returns the seconds it held."""
    mark("start", key)
    probe, took = 1_000_000, 0.0
    while took < 0.2:  # a probe long enough to time
        probe *= 2
        started = time.perf_counter()
        sum(range(probe))
        took = time.perf_counter() - started
    rate = 0.0
    for _ in range(3):  # the fastest of three: load only slows the long call down, never speeds it up
        started = time.perf_counter()
        sum(range(probe))
        rate = max(rate, probe / (time.perf_counter() - started))
    started = time.perf_counter()
    sum(range(int(rate * seconds)))
    held = time.perf_counter() - started
    mark("done", key)
    return held


@app.task(bind=True, max_retries=5)
def flaky(self: Task[[str, int], int], key: str, failures: int) -> int:
    mark("start", key)
    if self.request.retries < failures:
        raise self.retry(exc=ConnectionError(f"attempt {self.request.retries}"), countdown=0.2)
    mark("done", key)
    return self.request.retries


@app.task
def crash_worker(key: str) -> None:
    """Kills the process that runs it, every time: a poison task."""
    mark("start", key)
    os.kill(os.getpid(), signal.SIGKILL)


@app.task
def stamp(key: str) -> float:
    mark("done", key)
    return time.time()


@app.task
def timed(key: str) -> None:
    """Records when it ran (the rate-limit tests read the times)."""
    mark(f"ran@{time.time():.3f}", key)


@app.task(bind=True)
def record_instant(self: Task[[], None]) -> None:
    """A periodic task that records the scheduled instant beat stamped on its message."""
    mark("done", "instant@" + str(self.request.headers.get("taskq_beat_instant")))


@app.task(bind=True)
def record_any(self: Task[..., None], *args: object, **kwargs: object) -> None:
    """Takes any arguments: the fuzz tests' task, marking the id of each message it ran (an id
    a marks line cannot hold, with whitespace say, as a digest of it)."""
    task_id = str(self.request.id)
    plain = task_id and all(c.isalnum() or c in "-_." for c in task_id) and task_id.isascii()
    mark("done", task_id if plain else "odd-id-" + hashlib.sha256(task_id.encode(errors="replace")).hexdigest()[:16])


@app.task
def exit_once(key: str) -> str:
    """The first run raises SystemExit, as a task calling sys.exit() does (it ends the
    consumer that runs it); the next run, of the redelivered message, returns."""
    path = os.environ.get("TASKQ_TEST_MARKS", "")
    earlier = os.path.exists(path) and f"start {key} " in open(path).read()
    mark("start", key)
    if not earlier:
        raise SystemExit(3)
    return key


@app.task
def sleep_until_soft_limit(key: str, seconds: float) -> str:
    """Sleeps; at its soft time limit it cleans up (marks "cleanup") and returns "cleaned"."""
    mark("start", key)
    try:
        end = time.monotonic() + seconds
        while time.monotonic() < end:  # short sleeps: the threads pool raises between bytecodes
            time.sleep(0.05)
    except SoftTimeLimitExceeded:
        mark("cleanup", key)
        return "cleaned"
    mark("done", key)
    return "finished"


@app.task(time_limit=1)
def overrun(key: str) -> str:
    """Runs far past its 1 s hard time limit."""
    mark("start", key)
    time.sleep(60)
    mark("done", key)
    return key


@app.task
async def async_sleep(key: str, seconds: float) -> str:
    """Awaits; other coroutines run on the same event loop meanwhile."""
    import asyncio

    mark("start", key)
    await asyncio.sleep(seconds)
    mark("done", key)
    return key


@app.task
async def async_until_soft_limit(key: str, seconds: float) -> str:
    """At its soft time limit the coroutine is cancelled: it cleans up in ``finally``."""
    import asyncio

    mark("start", key)
    try:
        await asyncio.sleep(seconds)
    finally:
        mark("cleanup", key)
    return key


@app.task(bind=True)
async def async_own_id(self: Task[[float], str], seconds: float) -> str:
    """Its own request, read after awaiting while other tasks ran on the same loop."""
    import asyncio

    await asyncio.sleep(seconds)
    return self.request.id
