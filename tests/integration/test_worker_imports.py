"""An SQLite worker imports none of the optional brokers' client libraries (issue 22: start-up)."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

OPTIONAL_CLIENTS = {"redis", "pika", "kombu", "amqp", "psycopg", "psycopg2", "aio_pika", "msgpack"}
APP = textwrap.dedent(
    """
    import os, sys
    from pathlib import Path
    from taskq import TaskQ

    HERE = Path(__file__).parent
    app = TaskQ("imports", broker=f"sqlite:///{HERE}/broker.db", backend=f"sqlite:///{HERE}/results.db")

    @app.task(name="imports.report")
    def report() -> None:
        (HERE / "modules.txt").write_text("\\n".join(sorted(sys.modules)))
    """
)


def test_an_sqlite_worker_imports_no_optional_client(tmp_path: Path) -> None:
    # Given an app on SQLite with one task queued that reports its process's modules
    (tmp_path / "imports_app.py").write_text(APP)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(tmp_path), os.environ.get("PYTHONPATH", "")])}
    code = "from imports_app import report; report.delay()"
    subprocess.run([sys.executable, "-c", code], env=env, check=True, timeout=60)
    # When a worker runs it
    worker = subprocess.Popen(
        [sys.executable, "-m", "taskq", "worker", "-A", "imports_app:app", "-P", "prefork", "-c", "1", "-l", "warning"],
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
    # Then none of the optional clients was imported, by the worker or the task's process
    modules = set(report.read_text().split())
    assert "taskq.brokers.sqlite" in modules  # the report is real
    assert {m.split(".")[0] for m in modules} & OPTIONAL_CLIENTS == set()
