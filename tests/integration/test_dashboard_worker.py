"""``taskq worker --dashboard``: the dashboard comes up beside the worker (a child process; a
thread on memory://), shows it, and goes away when the worker stops."""

from __future__ import annotations

import urllib.request
import uuid
from pathlib import Path

import pytest

from tests.integration.workers import WorkerFactory, base_env, wait_until
from tests.servers import free_port

WAIT = 40.0


def page(port: int) -> str | None:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=2) as response:
            return str(response.read().decode())
    except OSError:
        return None


@pytest.mark.parametrize("broker", ["sqlite", "memory"])
def test_worker_dashboard_shows_the_worker_and_stops_with_it(tmp_path: Path, broker: str) -> None:
    url = f"sqlite:///{tmp_path}/broker.db" if broker == "sqlite" else "memory://"
    factory = WorkerFactory(tmp_path, base_env(tmp_path, url))
    port, node = free_port(), f"dw-{uuid.uuid4().hex[:8]}@testhost"
    pool = ("-P", "threads") if broker == "memory" else ()
    try:
        worker = factory.start("-E", "-n", node, "--dashboard", "--dashboard-port", str(port), *pool)
        online = f'<tr data-worker="{node}"><td>{node}</td><td class="online">online</td>'
        wait_until(lambda: online in (page(port) or ""), WAIT, "the dashboard showing the worker online")
        assert worker.stop() == 0
        wait_until(lambda: page(port) is None, WAIT, "the dashboard gone with its worker")
    finally:
        factory.close()


def test_the_dashboard_of_a_worker_killed_with_sigkill_goes_too(tmp_path: Path) -> None:
    factory = WorkerFactory(tmp_path, base_env(tmp_path, f"sqlite:///{tmp_path}/broker.db"))
    port = free_port()
    try:
        worker = factory.start("--dashboard", "--dashboard-port", str(port))
        wait_until(lambda: page(port) is not None, WAIT, "the dashboard up")
        worker.kill_tree()
        wait_until(lambda: page(port) is None, WAIT, "the dashboard gone with its killed worker")
    finally:
        factory.close()
