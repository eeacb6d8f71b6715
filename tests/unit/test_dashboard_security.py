"""The dashboard's security rules against a real server on a loopback port (uvicorn in a thread):
CSRF, POST-only actions, authentication, escaping, and the refusal of a public bind without
credentials (one line, exit 2)."""

from __future__ import annotations

import base64
import http.cookiejar
import os
import re
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import uvicorn

from taskq import TaskQ
from taskq.dashboard.routes import create_app
from taskq.dashboard.security import Security
from taskq.dashboard.state import FleetState
from tests.servers import free_port


@dataclass
class Served:
    base: str
    state: FleetState
    app: TaskQ

    def opener(self, *handlers: urllib.request.BaseHandler) -> urllib.request.OpenerDirector:
        return urllib.request.build_opener(urllib.request.HTTPCookieProcessor(http.cookiejar.CookieJar()), *handlers)


def call(opener: urllib.request.OpenerDirector, url: str, data: dict[str, str] | None = None,
         headers: dict[str, str] | None = None) -> tuple[int, str, Any]:
    body = None if data is None else urllib.parse.urlencode(data).encode()
    request = urllib.request.Request(url, data=body, headers=headers or {})
    try:
        with opener.open(request, timeout=10) as response:
            return response.status, response.read().decode(), response.headers
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode(), exc.headers


def csrf_of(page: str) -> str:
    match = re.search(r'name="csrf-token" content="([0-9a-f]+)"', page)
    assert match, page[:500]
    return match.group(1)


def serve(security: Security) -> Iterator[Served]:
    name = uuid.uuid4().hex
    app = TaskQ("dash", broker=f"memory://{name}", backend=f"memory://{name}")
    state = FleetState()
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(create_app(app, security, state=state, feed=False), host="127.0.0.1",
                                           port=port, log_level="error", lifespan="on"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 15
    while not server.started:
        assert time.monotonic() < deadline and thread.is_alive(), "the dashboard did not start"
        time.sleep(0.02)
    try:
        yield Served(f"http://127.0.0.1:{port}", state, app)
    finally:
        server.should_exit = True
        thread.join(10)


@pytest.fixture
def open_dashboard() -> Iterator[Served]:
    yield from serve(Security())


def test_an_action_without_or_with_a_wrong_csrf_token_is_403_and_does_nothing(open_dashboard: Served) -> None:
    opener = open_dashboard.opener()
    status, page, _ = call(opener, open_dashboard.base + "/")
    assert status == 200
    url = open_dashboard.base + "/actions/revoke"
    assert call(opener, url, {"task_id": "t1"})[0] == 403
    assert call(opener, url, {"task_id": "t1", "csrf_token": "0" * 64})[0] == 403
    assert call(open_dashboard.opener(), url, {"task_id": "t1", "csrf_token": csrf_of(page)})[0] == 403  # other session
    assert open_dashboard.app.control.revocations.list() == []
    status, body, _ = call(opener, url, {"task_id": "t1", "csrf_token": csrf_of(page)},
                           {"X-Requested-With": "fetch"})
    assert (status, body) == (200, '{"ok":true,"message":"revoked t1"}')
    assert [r.task_id for r in open_dashboard.app.control.revocations.list()] == ["t1"]


def test_a_get_on_any_action_is_405(open_dashboard: Served) -> None:
    opener = open_dashboard.opener()
    for action in ("revoke", "retry", "requeue", "purge-dead-letters", "pause", "resume"):
        assert call(opener, f"{open_dashboard.base}/actions/{action}?task_id=t1")[0] == 405


def test_pages_escape_task_values_and_forbid_inline_scripts(open_dashboard: Served) -> None:
    open_dashboard.state.apply({"type": "task-received", "uuid": "x1", "timestamp": 1.0, "hostname": "w@h",
                                "name": "m.echo", "args": "('<script>alert(1)</script>',)", "kwargs": "{}"})
    status, page, headers = call(open_dashboard.opener(), open_dashboard.base + "/")
    assert status == 200
    assert "<script>alert(1)" not in page and "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "script-src 'self'" in headers["content-security-policy"]
    assert headers["x-frame-options"] == "DENY"


def test_metrics_are_served_on_the_same_port(open_dashboard: Served) -> None:
    pytest.importorskip("prometheus_client")
    open_dashboard.state.apply({"type": "task-succeeded", "uuid": "m1", "timestamp": 1.0, "hostname": "w@h",
                                "name": "m.add", "runtime": 0.25})
    open_dashboard.state.set_queues({"celery": (3, 1)})
    status, text, _ = call(open_dashboard.opener(), open_dashboard.base + "/metrics")
    assert status == 200
    assert 'taskq_tasks_total{state="SUCCESS",task="m.add"} 1.0' in text
    assert 'taskq_task_runtime_seconds_sum{task="m.add"} 0.25' in text
    assert 'taskq_queue_depth{queue="celery"} 3.0' in text and 'taskq_dead_letters{queue="celery"} 1.0' in text


@pytest.fixture
def guarded_dashboard() -> Iterator[Served]:
    yield from serve(Security(auth="admin:s3cret", token="a-long-enough-token"))


def test_credentials_are_required_when_given(guarded_dashboard: Served) -> None:
    base = guarded_dashboard.base
    assert call(guarded_dashboard.opener(), base + "/")[0] == 401
    assert call(guarded_dashboard.opener(), base + "/metrics")[0] == 401
    basic = "Basic " + base64.b64encode(b"admin:s3cret").decode()
    wrong = "Basic " + base64.b64encode(b"admin:guess").decode()
    assert call(guarded_dashboard.opener(), base + "/", headers={"Authorization": basic})[0] == 200
    assert call(guarded_dashboard.opener(), base + "/", headers={"Authorization": wrong})[0] == 401
    assert call(guarded_dashboard.opener(), base + "/", headers={"Authorization": "Bearer a-long-enough-token"})[0] \
        == 200
    redirects: list[str] = []

    class Follow(urllib.request.HTTPRedirectHandler):
        def redirect_request(self, req: Any, fp: Any, code: int, msg: str, headers: Any, newurl: str) -> Any:
            redirects.append(newurl)
            return super().redirect_request(req, fp, code, msg, headers, newurl)

    browser = guarded_dashboard.opener(Follow())
    assert call(browser, base + "/?state=FAILURE&token=a-long-enough-token")[0] == 200
    assert redirects == [base + "/?state=FAILURE"]  # the token leaves the address bar
    assert call(browser, base + "/")[0] == 200  # the cookie the token left
    assert call(browser, base + "/?token=wrong-token-here")[0] == 200  # the cookie still counts
    assert call(guarded_dashboard.opener(), base + "/?token=wrong-token-here")[0] == 401


def run_cli(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "taskq", *args], capture_output=True, text=True, timeout=60,
                          env={**os.environ, **env})


@pytest.mark.parametrize("command", [
    ["dashboard", "-A", "nowhere:app", "--bind", "0.0.0.0"],
    ["worker", "-A", "nowhere:app", "--dashboard", "--dashboard-bind", "0.0.0.0"],
])
def test_a_public_bind_without_credentials_refuses_to_start_in_one_line(
    command: list[str], tmp_path: Path
) -> None:
    if command[0] == "worker":  # the worker loads its app first: give it one that exists
        command = [*command[:2], "tests.example_project.example_tasks:app", *command[3:]]
    result = run_cli(*command, TASKQ_BROKER_URL=f"sqlite:///{tmp_path}/broker.db")
    assert result.returncode == 2, result
    assert result.stderr.strip().count("\n") == 0, result.stderr
    assert "give --auth user:password or --token" in result.stderr
    assert result.stdout == ""


def test_a_malformed_auth_refuses_to_start_in_one_line() -> None:
    result = run_cli("dashboard", "-A", "nowhere:app", "--auth", "nopassword")
    assert result.returncode == 2
    assert result.stderr.strip() == "taskq: error: --auth must be user:password (both non-empty)"
