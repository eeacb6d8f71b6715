"""An SQLite worker imports none of the optional brokers' client libraries, nor the heavy
modules only other pools, servers or commands need (issue 22: start-up); a Redis worker on
the prefork pool answers remote control from its supervisor (no control process), whose kombu
its children share without kombu's optional extras, yet a task's YAML or msgpack through kombu
still works; forked processes share the heap their parent froze (issue 22: idle memory,
docs/performance.md "Idle memory")."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
import textwrap
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.servers import require_redis

OPTIONAL_CLIENTS = {"redis", "pika", "kombu", "amqp", "psycopg", "psycopg2", "aio_pika", "msgpack"}
# Heavy modules an SQLite worker on the prefork or solo pool has no use for: the asyncio pool's
# and the dashboard's, the metrics', gevent; and taskq's own that only beat, remote control's
# client and the other commands load (the CLI imports a command's module when it runs).
HEAVY = {"asyncio", "starlette", "uvicorn", "prometheus_client", "gevent", "rich", "sqlalchemy", "celery"}
TASKQ_UNUSED = {"taskq.beat", "taskq.cli.inspect", "taskq.cli.demo", "taskq.control.client", "taskq.dashboard",
                "taskq.metrics", "taskq.worker.asyncio_pool"}  # fmt: skip
APP = textwrap.dedent(
    """
    import gc, os, sys
    from pathlib import Path
    from taskq import TaskQ

    HERE = Path(__file__).parent
    URL = os.environ["IMPORTS_BROKER"] or f"sqlite:///{HERE}/broker.db"
    app = TaskQ("imports", broker=URL, backend=f"sqlite:///{HERE}/results.db",
                task_default_queue=os.environ["IMPORTS_QUEUE"])

    @app.task(name="imports.report")
    def report() -> None:
        (HERE / "frozen.txt").write_text(str(gc.get_freeze_count()))
        modules = sorted(sys.modules)
        if os.environ.get("IMPORTS_KOMBU_CODECS"):  # after the list: this imports the libraries
            from kombu import serialization

            decoded = []
            for name in ("yaml", "msgpack"):
                content_type, encoding, body = serialization.dumps({"a": [1, "b"]}, name)
                decoded.append(repr(serialization.loads(body, content_type, encoding, accept={content_type})))
            (HERE / "kombu.txt").write_text("\\n".join(decoded))
        (HERE / "modules.txt").write_text("\\n".join(modules))
    """
)


def run_report(
    tmp_path: Path, broker: str, pool: str = "prefork",
    while_running: Callable[[int, dict[str, str]], None] | None = None, extra_env: dict[str, str] | None = None,
) -> set[str]:
    """The modules of the process that ran the reporting task on ``broker`` (the prefork
    child, or the solo worker itself); ``while_running(worker pid, environment)`` is called
    once the task ran, before the worker is stopped."""
    (tmp_path / "imports_app.py").write_text(APP)
    token = uuid.uuid4().hex[:8]
    env = {
        **os.environ, "IMPORTS_BROKER": broker, "IMPORTS_QUEUE": f"imports-{token}",
        "TASKQ_WORKER_HOSTNAME": f"imports-{token}@testhost",
        "PYTHONPATH": os.pathsep.join([str(tmp_path), os.environ.get("PYTHONPATH", "")]), **(extra_env or {}),
    }  # fmt: skip
    code = "from imports_app import report; report.delay()"
    subprocess.run([sys.executable, "-c", code], env=env, check=True, timeout=60)
    worker = subprocess.Popen(
        [sys.executable, "-m", "taskq", "worker", "-A", "imports_app:app", "-P", pool, "-c", "1", "-l", "warning"],
        env=env, cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )  # fmt: skip
    report = tmp_path / "modules.txt"
    try:
        deadline = time.monotonic() + 60
        while not report.exists() and worker.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        if report.exists() and while_running is not None:
            while_running(worker.pid, env)
    finally:
        worker.terminate()
        _, stderr = worker.communicate(timeout=30)
    assert report.exists(), f"the task never ran: {stderr.decode(errors='replace')[-2000:]}"
    return set(report.read_text().split())


@pytest.mark.parametrize("pool", ["prefork", "solo"])
def test_an_sqlite_worker_imports_no_optional_client_nor_heavy_module(tmp_path: Path, pool: str) -> None:
    # Given an app on SQLite with one task queued that reports its process's modules
    # When a worker runs it
    modules = run_report(tmp_path, "", pool)
    # Then none of the optional clients, nor any heavy module it has no use for, was imported
    # by the worker or the task's process
    assert {"taskq.brokers.sqlite", "taskq.cli.worker"} <= modules  # the report is real
    assert {m.split(".")[0] for m in modules} & (OPTIONAL_CLIENTS | HEAVY) == set()
    assert {m for m in modules if m in TASKQ_UNUSED or m.startswith(tuple(u + "." for u in TASKQ_UNUSED))} == set()


def test_a_redis_workers_children_share_a_lean_kombu_whose_serializers_load_on_first_use(tmp_path: Path) -> None:
    # Given an app on Redis (whose control mailbox is kombu's, served by the supervisor)
    # When a prefork child runs the reporting task, which then encodes and decodes through
    # kombu's YAML and msgpack serializers
    modules = run_report(tmp_path, require_redis(), extra_env={"IMPORTS_KOMBU_CODECS": "1"})
    # Then the child inherited kombu from its supervisor without the libraries of those two
    # serializers (nor billiard's), and they still work: each loads on its first use
    assert "taskq.brokers.redis" in modules and "kombu.serialization" in modules  # the report is real
    assert {m.split(".")[0] for m in modules} & {"yaml", "msgpack", "billiard"} == set()
    installed = [name for name in ("yaml", "msgpack") if _has(name)]
    if installed != ["yaml", "msgpack"]:
        pytest.skip(f"PyYAML or msgpack is not installed (found {installed})")
    assert (tmp_path / "kombu.txt").read_text().split("\n") == ["{'a': [1, 'b']}"] * 2


def test_a_prefork_child_shares_the_heap_its_supervisor_froze(tmp_path: Path) -> None:
    # Given an SQLite worker on the prefork pool
    # When a child runs the reporting task
    run_report(tmp_path, "")
    # Then the objects the child inherited are in the collector's permanent generation: no
    # collection in the child writes to (and so copies) the pages it shares with the supervisor
    assert int((tmp_path / "frozen.txt").read_text()) > 1000


# kombu's optional extras with a compiled part: a process that imported one maps its file.
EXTRA_LIBRARIES = {"yaml._yaml": "_yaml.", "msgpack._cmsgpack": "_cmsgpack."}


def mapped_files(pid: int) -> set[str]:
    with open(f"/proc/{pid}/maps") as maps:
        return {line.split()[-1].rsplit("/", 1)[-1] for line in maps if "/" in line}


# Prefork: the supervisor (serving remote control) and its child. Solo: the worker, its control
# process (a task holding the worker's GIL must not stop it) and its claim keeper.
PROCESSES = {"prefork": 2, "solo": 3}


@pytest.mark.parametrize("pool", sorted(PROCESSES))
def test_a_redis_worker_has_a_control_process_only_beside_tasks_and_none_loads_kombus_extras(
    tmp_path: Path, pool: str
) -> None:
    installed = [library for module, library in EXTRA_LIBRARIES.items() if _has(module)]
    if not installed:
        pytest.skip("neither PyYAML's nor msgpack's compiled module is installed")
    seen: dict[int, set[str]] = {}

    def look(pid: int, env: dict[str, str]) -> None:
        ping = subprocess.run(
            [sys.executable, "-m", "taskq", "inspect", "ping", "-A", "imports_app:app", "-d",
             env["TASKQ_WORKER_HOSTNAME"], "--timeout", "5", "--json"],
            env=env, cwd=tmp_path, capture_output=True, text=True, timeout=60,
        )  # fmt: skip
        assert ping.returncode == 0 and "pong" in ping.stdout, ping.stderr  # the supervisor answers through kombu
        tree = [pid, *(int(p) for p in Path(f"/proc/{pid}/task/{pid}/children").read_text().split())]
        seen.update({p: mapped_files(p) for p in tree})

    # Given a Redis worker (its supervisor or control process answers remote control through kombu)
    # When it has answered a ping
    run_report(tmp_path, require_redis(), pool, while_running=look)
    # Then a control process runs only beside a process that runs tasks (solo), and no process
    # of the worker loaded kombu's YAML or msgpack serializers
    assert len(seen) == PROCESSES[pool]
    loaded = {pid: sorted(f for f in files if f.startswith(tuple(installed))) for pid, files in seen.items()}
    assert all(not extras for extras in loaded.values()), loaded


def _has(module: str) -> bool:
    """Whether ``module`` is installed (False too when its package is not)."""
    try:
        return importlib.util.find_spec(module) is not None
    except ImportError:
        return False
