"""The deployment files: docker-compose.yml parses and wires the services; each service's
Dockerfile copies files that exist; and each service's entry command, run locally against
the local Redis (no Docker engine here), starts and turns healthy, with beat enqueueing and
the worker running what beat sent."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
import yaml

from tests.servers import require_redis

REPO = Path(__file__).resolve().parents[2]
SERVICES = ("worker", "beat")


def read_env_file(path: Path) -> dict[str, str]:
    values: dict[str, str] = {}
    for line in path.read_text().splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            key, sep, value = line.partition("=")
            assert sep, f"{path}: not KEY=VALUE: {line!r}"
            values[key] = value
    return values


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    data = yaml.safe_load((REPO / "docker-compose.yml").read_text())
    assert isinstance(data, dict)
    return data


def test_compose_runs_the_servers_a_worker_and_a_beat(compose: dict[str, Any]) -> None:
    services = compose["services"]
    assert set(services) == {"redis", "rabbitmq", "worker", "beat"}
    for server in ("redis", "rabbitmq"):
        assert services[server]["healthcheck"]["test"], f"{server} has no health check"
    for name in SERVICES:
        service = services[name]
        assert service["build"] == {"context": ".", "dockerfile": f"{name}/Dockerfile"}
        assert (REPO / service["env_file"]).is_file()
        env = service["environment"]
        assert env["TASKQ_BROKER_URL"].startswith("amqp://") and "@rabbitmq:" in env["TASKQ_BROKER_URL"]
        assert env["TASKQ_RESULT_BACKEND"].startswith("redis://redis:")
        assert env["TASKQ_BEAT_STORE_URL"].startswith("redis://redis:")
        assert service["depends_on"] == {
            "redis": {"condition": "service_healthy"},
            "rabbitmq": {"condition": "service_healthy"},
        }
        assert service["healthcheck"]["test"] == ["CMD", f"taskq-{name}-healthcheck"]
        assert service["restart"] == "unless-stopped"


@pytest.mark.parametrize("name", SERVICES)
def test_service_folder_is_not_a_python_package(name: str) -> None:
    folder = REPO / name
    assert not (folder / "__init__.py").exists()
    assert {p.name for p in folder.iterdir()} >= {"Dockerfile", "entrypoint.sh", "healthcheck", "example.env"}


@pytest.mark.parametrize("name", SERVICES)
def test_dockerfile_copies_what_exists_and_runs_the_entrypoint(name: str) -> None:
    lines = (REPO / name / "Dockerfile").read_text().splitlines()
    copies = [[w for w in line.split()[1:-1] if not w.startswith("--")] for line in lines if line.startswith("COPY ")]
    for sources in copies:
        for source in sources:
            assert (REPO / source).exists(), f"{name}/Dockerfile copies missing {source}"
    text = "\n".join(lines)
    assert f'ENTRYPOINT ["taskq-{name}-entrypoint"]' in text
    assert f'CMD ["taskq-{name}-healthcheck"]' in text
    assert f"{name}/entrypoint.sh /usr/local/bin/taskq-{name}-entrypoint" in text
    assert f"{name}/healthcheck /usr/local/bin/taskq-{name}-healthcheck" in text


@pytest.mark.parametrize("name", SERVICES)
def test_scripts_are_executable_posix_shell(name: str) -> None:
    for script in ("entrypoint.sh", "healthcheck"):
        path = REPO / name / script
        assert os.access(path, os.X_OK), f"{path} is not executable"
        assert path.read_text().startswith("#!/bin/sh\n")
        assert subprocess.run(["sh", "-n", str(path)], capture_output=True).returncode == 0


@pytest.mark.parametrize("name", SERVICES)
def test_example_env_configures_the_service(name: str) -> None:
    env = read_env_file(REPO / name / "example.env")
    assert env["TASKQ_APP"] == "example_tasks:app"
    assert env["TASKQ_BROKER_URL"] and env["TASKQ_RESULT_BACKEND"]
    if name == "beat":
        schedule = json.loads(env["TASKQ_BEAT_SCHEDULE"])
        assert schedule and all("task" in item and "schedule" in item for item in schedule.values())


# -- the entry commands, run locally -----------------------------------------------------------


class Service:
    def __init__(self, name: str, env: dict[str, str], tmp_path: Path) -> None:
        self.name = name
        self.env = env
        self.log_path = tmp_path / f"{name}.log"
        with open(self.log_path, "wb") as log:
            self.proc = subprocess.Popen(
                ["sh", str(REPO / name / "entrypoint.sh")], env=env, cwd=tmp_path, stdout=log, stderr=subprocess.STDOUT
            )

    def healthy(self) -> bool:
        check = subprocess.run(["sh", str(REPO / self.name / "healthcheck")], env=self.env, capture_output=True)
        return check.returncode == 0

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            return self.proc.wait()

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")


def wait_until(predicate: Callable[[], Any], timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


@pytest.fixture
def local_env(tmp_path: Path) -> Iterator[tuple[dict[str, str], str]]:
    url = require_redis()
    prefix = f"taskq-deploy-{uuid.uuid4().hex[:10]}:"
    base = {k: v for k, v in os.environ.items() if not k.startswith("TASKQ_")}
    base["PYTHONPATH"] = os.pathsep.join([str(REPO), str(REPO / "tests" / "example_project")])
    base.update(
        TASKQ_BROKER_URL=url,
        TASKQ_RESULT_BACKEND=url,
        TASKQ_BROKER_TRANSPORT_OPTIONS=json.dumps({"global_keyprefix": prefix}),
        TASKQ_RESULT_KEY_PREFIX=f"{prefix}result-",
        TASKQ_BEAT_STORE_URL=f"{url}?prefix={prefix}beat:",
        TASKQ_BEAT_SCHEDULE=json.dumps({"add-often": {"task": "example_tasks.add", "schedule": 0.5, "args": [2, 3]}}),
        TASKQ_BEAT_LOCK_TTL="3",
        TASKQ_BEAT_HEARTBEAT_FILE=str(tmp_path / "beat.heartbeat"),
        TASKQ_WORKER_HEARTBEAT_FILE=str(tmp_path / "worker.heartbeat"),
        TASKQ_WORKER_POOL="threads",
        TASKQ_WORKER_CONCURRENCY="2",
        TASKQ_WORKER_HOSTNAME=f"{prefix.rstrip(':')}@%h",  # another test's worker may hold taskq@<host>
    )
    yield base, prefix
    client = redis.Redis.from_url(url)
    keys = list(client.scan_iter(match=prefix + "*"))
    if keys:
        client.delete(*keys)
    client.close()


def service_env(name: str, base: dict[str, str]) -> dict[str, str]:
    # The example.env gives the service's own settings; this machine's servers override it.
    return {**read_env_file(REPO / name / "example.env"), **base}


@pytest.mark.slow
def test_entry_commands_run_against_local_redis(local_env: tuple[dict[str, str], str], tmp_path: Path) -> None:
    base, prefix = local_env
    # Given the beat and worker services started by their entry commands
    beat = Service("beat", service_env("beat", base), tmp_path)
    worker = Service("worker", service_env("worker", base), tmp_path)
    try:
        # Then both turn healthy by their own health checks
        wait_until(beat.healthy, 30, "beat's health check to pass:\n" + beat.log())
        wait_until(worker.healthy, 30, "the worker's health check to pass")
        # And the worker runs what beat enqueues
        client = redis.Redis.from_url(base["TASKQ_BROKER_URL"])

        def results() -> list[dict[str, Any]]:
            found = []
            for key in client.scan_iter(match=f"{prefix}result-*"):
                raw = client.get(key)
                if raw:
                    found.append(json.loads(raw))
            return [r for r in found if r.get("status") == "SUCCESS"]

        done = wait_until(lambda: len(results()) >= 2 and results(), 30, "two beat-sent tasks to succeed")
        assert all(r["result"] == 5 for r in done)
        client.close()
    finally:
        beat_code, worker_code = beat.stop(), worker.stop()
    # And both stop cleanly on SIGTERM (a container stop)
    assert beat_code == 0, beat.log()
    assert worker_code == 0, worker.log()
