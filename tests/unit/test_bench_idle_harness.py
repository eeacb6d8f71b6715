"""The many-queues benchmark's idle figure counts every command its Redis runs (INFO
commandstats), so nothing of an earlier run may still talk to that Redis: a harness ended by
a signal stops its workers (each leads a session of its own, so nothing else would), and
the idle phase refuses a Redis that has clients older than the run."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from bench.many_queues import foreign_clients
from tests.contract.redis_factories import ThrowawayRedis
from tests.integration.workers import wait_until

ROOT = Path(__file__).resolve().parents[2]
HARNESS = """
import sys, time
from bench.procs import WorkerGroup
group = WorkerGroup("sleeper")
group.start([[sys.executable, "-c", "import time; time.sleep(120)"]], {})
print(group.pids[0], flush=True)
time.sleep(120)
"""


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def test_a_harness_ended_by_sigterm_stops_its_workers() -> None:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    harness = subprocess.Popen([sys.executable, "-c", HARNESS], cwd=ROOT, env=env, stdout=subprocess.PIPE)
    worker = 0
    try:
        assert harness.stdout is not None
        worker = int(harness.stdout.readline())
        assert alive(worker)
        harness.send_signal(signal.SIGTERM)  # as `timeout` or a time limit ends it
        assert harness.wait(30) == 128 + signal.SIGTERM
        wait_until(lambda: not alive(worker), 10, "the worker to stop with its harness")
    finally:
        if harness.poll() is None:
            harness.kill()
            harness.wait(10)
        if worker and alive(worker):
            os.killpg(worker, signal.SIGKILL)


@pytest.fixture
def server(tmp_path: Path) -> Iterator[ThrowawayRedis]:
    redis_server = ThrowawayRedis(tmp_path)
    redis_server.start()
    try:
        yield redis_server
    finally:
        redis_server.stop()


def test_the_idle_measure_names_the_clients_older_than_the_run(server: ThrowawayRedis) -> None:
    before_the_run = redis.Redis.from_url(server.url)
    before_the_run.ping()  # a worker an earlier run left behind
    time.sleep(2.2)  # CLIENT LIST ages are whole seconds, with a second's slack
    started = time.monotonic()
    harness = redis.Redis.from_url(server.url)
    try:
        [old] = [c["addr"] for c in harness.client_list() if int(c["age"]) >= 2]
        assert foreign_clients(harness, since=started) == [old]
        assert foreign_clients(harness, since=started - 10) == []  # both connected after that
    finally:
        before_the_run.close()
        harness.close()
