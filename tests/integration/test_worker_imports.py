"""An SQLite worker imports none of the optional brokers' client libraries, nor the heavy
modules only other pools, servers or commands need (issue 22: start-up); a Redis worker's pool
children do not carry kombu, which only its control process needs."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import time
import uuid
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
    import os, sys
    from pathlib import Path
    from taskq import TaskQ

    HERE = Path(__file__).parent
    URL = os.environ["IMPORTS_BROKER"] or f"sqlite:///{HERE}/broker.db"
    app = TaskQ("imports", broker=URL, backend=f"sqlite:///{HERE}/results.db",
                task_default_queue=os.environ["IMPORTS_QUEUE"])

    @app.task(name="imports.report")
    def report() -> None:
        (HERE / "modules.txt").write_text("\\n".join(sorted(sys.modules)))
    """
)


def run_report(tmp_path: Path, broker: str, pool: str = "prefork") -> set[str]:
    """The modules of the process that ran the reporting task on ``broker`` (the prefork
    child, or the solo worker itself)."""
    (tmp_path / "imports_app.py").write_text(APP)
    env = {
        **os.environ, "IMPORTS_BROKER": broker, "IMPORTS_QUEUE": f"imports-{uuid.uuid4().hex[:8]}",
        "PYTHONPATH": os.pathsep.join([str(tmp_path), os.environ.get("PYTHONPATH", "")]),
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


def test_a_redis_workers_pool_children_import_no_kombu(tmp_path: Path) -> None:
    # Given an app on Redis (whose control mailbox is kombu's, in the control process)
    # When a prefork child runs the reporting task
    modules = run_report(tmp_path, require_redis())
    # Then the child (and so the supervisor it was forked from) never imported kombu:
    # the start-up check that the worker's name is free ran in a throwaway process
    assert "taskq.brokers.redis" in modules  # the report is real
    assert {m.split(".")[0] for m in modules} & {"kombu", "amqp"} == set()
