"""Issue 19's proof: examples/celery-project runs on taskq and, with its import lines changed
to Celery's, on Celery, on SQLite, Redis and RabbitMQ, and both give the same results.

Each library gets its own copy of the project and its own broker space (a SQLite file, a
database of a throwaway Redis, a fresh RabbitMQ vhost); both run at once: worker
(``taskq -A proj worker ...`` / ``celery -A proj worker ...``, the same flags), beat, and the
producer script; then the producer's results and beat's ticks are compared.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

import pytest

from tests.integration.workers import wait_until
from tests.servers import free_port, require_rabbitmq, require_redis

pytest.importorskip("celery")

pytestmark = [pytest.mark.slow, pytest.mark.timeout(480)]  # beat's crontab entry runs on the minute

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "celery-project"
REPO = Path(__file__).resolve().parents[2]
WORKER_ARGS = ["-A", "proj", "worker", "-l", "INFO", "-Q", "celery,hipri", "-c", "2"]
BEAT_ARGS = ["-A", "proj", "beat", "-l", "INFO"]
EXPECTED = {"add": 8, "mul": 21, "xsum": 10, "chain": 32, "flaky": 2, "where": "hipri"}
LIBRARIES = ("taskq", "celery")


def project_copy(tmp: Path, library: str) -> Path:
    """The example as that library's user has it: for Celery, ``from taskq`` imports become
    ``from celery``, and nothing else changes."""
    target = tmp / library
    shutil.copytree(EXAMPLE, target, ignore=shutil.ignore_patterns("__pycache__", "*.db", "celerybeat-schedule*"))
    if library == "celery":
        app_module = target / "proj" / "celery.py"
        app_module.write_text(app_module.read_text().replace("\nfrom taskq", "\nfrom celery"))
    return target


def changed_lines(a: Path, b: Path) -> list[str]:
    out = []
    for path in sorted(p for p in a.rglob("*.py")):
        other = b / path.relative_to(a)
        pairs = zip(path.read_text().splitlines(), other.read_text().splitlines(), strict=True)
        out += [line for line, twin in pairs if line != twin]
    return out


@contextmanager
def throwaway_redis(tmp: Path) -> Iterator[str]:
    """A redis-server of this test's own: both libraries' keys stay out of the shared one."""
    require_redis()  # skip (or fail under CI) like every Redis test when Redis is absent
    if shutil.which("redis-server") is None:
        pytest.skip("redis-server is not installed")
    port = free_port()
    proc = subprocess.Popen(
        ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
         "--dir", str(tmp)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    try:
        import redis

        client = redis.Redis(port=port)
        wait_until(lambda: _pings(client), 20, "throwaway redis-server")
        yield f"redis://127.0.0.1:{port}"
    finally:
        proc.terminate()
        proc.wait(10)


def _pings(client: object) -> bool:
    try:
        return bool(client.ping())  # type: ignore[attr-defined]
    except Exception:
        return False


@contextmanager
def broker_urls(kind: str, tmp: Path, stack: ExitStack) -> Iterator[dict[str, tuple[str, str]]]:
    """(broker URL, result backend URL) per library, written as each library's users write them."""
    if kind == "sqlite":
        yield {
            "taskq": (f"sqlite:///{tmp}/taskq-broker.db", f"db+sqlite:///{tmp}/taskq-results.db"),
            "celery": (f"sqla+sqlite:///{tmp}/celery-broker.db", f"db+sqlite:///{tmp}/celery-results.db"),
        }
    elif kind == "redis":
        url = stack.enter_context(throwaway_redis(tmp))
        yield {"taskq": (f"{url}/0", f"{url}/0"), "celery": (f"{url}/1", f"{url}/1")}
    else:
        from tests.contract.rabbitmq_factories import fresh_vhost

        amqp = require_rabbitmq()
        yield {library: (stack.enter_context(fresh_vhost(amqp)), "rpc://") for library in LIBRARIES}


class Run:
    """One library's worker, beat and producer on one copy of the project."""

    def __init__(self, library: str, root: Path, broker: str, backend: str) -> None:
        self.library, self.root = library, root
        self.ticks = root / "ticks.log"
        env = {k: v for k, v in os.environ.items() if not k.startswith(("TASKQ_", "CELERY_"))}
        env.update(
            PROJ_BROKER_URL=broker, PROJ_RESULT_BACKEND=backend, PROJ_TICKS=str(self.ticks), PYTHONUNBUFFERED="1",
            TASKQ_WORKER_HEARTBEAT_FILE=str(root / "worker.heartbeat"),
            TASKQ_BEAT_STORE_URL=f"sqlite:///{root}/beat-store.db",  # RabbitMQ keeps no schedule
            PYTHONPATH=os.pathsep.join([str(root), str(REPO)]),
        )
        self.env = env
        self.procs: list[subprocess.Popen[bytes]] = []

    def start(self, name: str, args: list[str]) -> None:
        log = open(self.root / f"{name}.log", "ab")
        cmd = [sys.executable, "-m", self.library, *args]
        self.procs.append(subprocess.Popen(cmd, cwd=self.root, env=self.env, stdout=log, stderr=subprocess.STDOUT))

    def log(self, name: str) -> str:
        path = self.root / f"{name}.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def produce(self) -> dict[str, object]:
        done = subprocess.run(
            [sys.executable, "run_tasks.py"], cwd=self.root, env=self.env, capture_output=True, text=True, timeout=180
        )
        assert done.returncode == 0, f"{self.library} producer failed:\n{done.stderr}\nworker:\n{self.log('worker')}"
        result: dict[str, object] = json.loads(done.stdout.strip().splitlines()[-1])
        return result

    def check_alive(self) -> None:
        for proc, name in zip(self.procs, ("worker", "beat"), strict=False):
            assert proc.poll() is None, f"{self.library} {name} exited:\n{self.log(name)[-3000:]}"

    def tick_labels(self) -> list[str]:
        return self.ticks.read_text().splitlines() if self.ticks.exists() else []

    def stop(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + 30
        for proc in self.procs:
            try:
                proc.wait(max(deadline - time.monotonic(), 1))
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(10)


@pytest.mark.parametrize("kind", ["sqlite", "redis", "rabbitmq"])
def test_the_celery_project_gives_the_same_results_on_taskq_and_on_celery(kind: str, tmp_path: Path) -> None:
    # Given the example project twice: as written (taskq) and with Celery's import lines.
    roots = {library: project_copy(tmp_path, library) for library in LIBRARIES}
    assert changed_lines(roots["taskq"], roots["celery"]) == [
        "from taskq import Celery",
        "from taskq.schedules import crontab",
    ]
    with ExitStack() as stack, broker_urls(kind, tmp_path, stack) as urls:
        runs = {library: Run(library, roots[library], *urls[library]) for library in LIBRARIES}
        try:
            # When each library runs its worker and beat with the same command line, and the producer
            for run in runs.values():
                run.start("worker", WORKER_ARGS)
                run.start("beat", BEAT_ARGS)
            results = {library: run.produce() for library, run in runs.items()}
            for run in runs.values():
                run.check_alive()

            # Then every task's result is the expected one, the same on both
            assert results["taskq"] == EXPECTED, runs["taskq"].log("worker")
            assert results["celery"] == EXPECTED, runs["celery"].log("worker")

            # and beat ran both the add_periodic_task entry (every 2 s) and the crontab one (each minute).
            def ticked(run: Run) -> bool:
                run.check_alive()
                labels = run.tick_labels()
                return "crontab" in labels and labels.count("every 2 seconds") >= 3

            for library, run in runs.items():
                wait_until(lambda run=run: ticked(run), 90, f"{library} beat's ticks")
        finally:
            for run in runs.values():
                run.stop()
    # The old setting name was read, with one warning.
    warning = "setting CELERY_TASK_RESULT_EXPIRES is Celery's old name for result_expires"
    assert runs["taskq"].log("worker").count(warning) == 1
