"""Issue 15: each scheduler flavour schedules on its own event loop, as APScheduler's do.

The same script (tests/integration/flavour_scenario.py) runs once with taskq.beat and once
with APScheduler 3.11, each in a process of its own (the Twisted reactor and gevent's hub are
process-global): a job due in 0.2 s, the scheduler started, the application's loop held off
for a second. Both must have done nothing in that second; once the loop runs the job fires,
a job added from another thread fires too (the scheduler is woken from any thread), and the
scheduler shuts down.
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
LIBRARY_OF = {"gevent": "gevent", "twisted": "twisted", "tornado": "tornado", "qt": "PySide6"}
FLAVOURS = ["blocking", "background", "asyncio", "gevent", "twisted", "tornado", "qt"]


def start(flavour: str, library: str) -> subprocess.Popen[str]:
    env = {**os.environ, "QT_QPA_PLATFORM": "offscreen", "PYTHONPATH": os.pathsep.join([str(ROOT), *sys.path])}
    return subprocess.Popen(
        [sys.executable, "-m", "tests.integration.flavour_scenario", flavour, library],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def outcome(process: subprocess.Popen[str]) -> dict[str, Any]:
    out, err = process.communicate(timeout=90)
    assert process.returncode == 0, err
    result: dict[str, Any] = json.loads(out.strip().splitlines()[-1])
    return result


@pytest.mark.timeout(120)
@pytest.mark.parametrize("flavour", FLAVOURS)
def test_flavour_schedules_on_its_own_loop_as_apscheduler_does(flavour: str) -> None:
    needed = LIBRARY_OF.get(flavour)
    if needed is not None and importlib.util.find_spec(needed) is None and not os.environ.get("CI"):
        pytest.skip(f"{needed} is not installed")
    # Given the same script for both libraries, run side by side
    ours_process, theirs_process = start(flavour, "taskq.beat"), start(flavour, "apscheduler")
    ours, theirs = outcome(ours_process), outcome(theirs_process)
    # Then nothing was submitted or run while the loop was held off, the job fired once the
    # loop ran, and the scheduler is stopped after shutdown(), for both alike
    for result in (ours, theirs):
        assert result["held"] == []
        assert result["fired"][:1] == ["first"]
        assert result["running"] is False and result["leader"] is False
    # ... and a job added from another thread woke taskq's scheduler. APScheduler's
    # QtScheduler is the exception: its wakeup() from a thread without a Qt event loop starts
    # a QTimer that never fires (the job waits until something else wakes the scheduler).
    assert ours["fired"] == ["first", "second"]
    assert theirs["fired"] == (["first"] if flavour == "qt" else ["first", "second"])


EXIT_PROBES = {
    "asyncio": """
import asyncio
import taskq.beat as tq
async def main():
    scheduler = tq.AsyncIOScheduler()
    scheduler.add_job(str, "interval", minutes=5)
    scheduler.start()
    await asyncio.sleep(0.3)
asyncio.run(main())
""",
    "tornado": """
from tornado.ioloop import IOLoop
import taskq.beat as tq
loop = IOLoop(make_current=False)
scheduler = tq.TornadoScheduler(io_loop=loop)
scheduler.add_job(str, "interval", minutes=5)
scheduler.start()
loop.call_later(0.3, loop.stop)
loop.start()
""",
}


@pytest.mark.timeout(60)
@pytest.mark.parametrize("flavour", sorted(EXIT_PROBES))
def test_a_program_that_never_shuts_the_scheduler_down_still_exits_at_once(flavour: str) -> None:
    # The core's worker waits up to a third of the lock's TTL (10 s) for the next due time;
    # the interpreter's exit must not wait for it.
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), *sys.path])}
    started = time.monotonic()
    done = subprocess.run([sys.executable, "-c", EXIT_PROBES[flavour]], cwd=ROOT, env=env, timeout=50, check=False)
    assert done.returncode == 0
    assert time.monotonic() - started < 6.0
