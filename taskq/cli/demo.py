"""``taskq demo``: a worker and a producer on the embedded SQLite broker, end to end."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import time

import click

from taskq.errors import TaskQError


@click.command()
@click.option("--db", default=None, help="SQLite file to use (default: a new temporary one)")
def demo(db: str | None) -> None:
    """Start a worker, send a few tasks (a retry and a countdown among them), print results."""
    folder = tempfile.mkdtemp(prefix="taskq-demo-")
    url = f"sqlite:///{db or os.path.join(folder, 'demo.db')}"
    os.environ["TASKQ_BROKER_URL"] = url
    click.echo(f"broker and result backend: {url}")
    beats = os.path.join(folder, "heartbeats.log")
    env = {**os.environ, "TASKQ_BROKER_URL": url, "TASKQ_DEMO_HEARTBEATS": beats}
    worker = subprocess.Popen(
        [sys.executable, "-m", "taskq", "worker", "-A", "taskq.demo:app", "-c", "2", "-l", "warning", "--beat"], env=env
    )
    try:
        ok = run_demo() and wait_heartbeats(beats)
    finally:
        worker.send_signal(signal.SIGTERM)
        try:
            worker.wait(timeout=30)
        except subprocess.TimeoutExpired:
            worker.kill()
    click.echo("worker stopped (warm shutdown)" if worker.returncode == 0 else f"worker exited {worker.returncode}")
    if not ok:
        raise SystemExit(1)


def run_demo() -> bool:
    from taskq.demo import add, divide, flaky, slow_square

    try:
        sent = time.monotonic()
        click.echo(f"add(2, 3)                  -> {add.delay(2, 3).get(timeout=30)}")
        click.echo(f"slow_square(7) (async def) -> {slow_square.delay(7).get(timeout=30)}")
        click.echo(f"flaky() (retries twice)    -> {flaky.delay().get(timeout=30)}")
        start = time.monotonic()
        late = add.apply_async((40, 2), countdown=2)
        click.echo(f"add(40, 2) countdown=2s    -> {late.get(timeout=30)} after {time.monotonic() - start:.1f}s")
        failed = divide.delay(1, 0)
        click.echo(f"divide(1, 0)               -> {failed.get(timeout=30, propagate=False)!r} ({failed.state})")
        many = add.delay_many([(i, i) for i in range(100)])
        total = sum(r.get(timeout=60) for r in many)
        click.echo(f"100 x add(i, i) in bulk    -> sum {total}")
        click.echo(f"all done in {time.monotonic() - sent:.1f}s")
        return total == 9900
    except TaskQError as exc:
        click.echo(f"taskq: error: {exc}", err=True)
        return False


def wait_heartbeats(path: str, wanted: int = 3, timeout: float = 30.0) -> bool:
    """The periodic task (every second, through the worker's embedded beat) ran a few times."""
    deadline = time.monotonic() + timeout
    count = 0
    while time.monotonic() < deadline:
        count = len(open(path).read().splitlines()) if os.path.exists(path) else 0
        if count >= wanted:
            break
        time.sleep(0.1)
    click.echo(f"periodic heartbeat() every 1s -> ran {count} times so far")
    return count >= wanted
