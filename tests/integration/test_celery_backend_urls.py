"""Issue 19 point 5: result backend URLs as Celery users write them (redis://, rpc://,
db+postgresql://, db+mysql://, db+sqlite:///) work through ``backend=`` and through the
``result_backend`` setting (here under its Celery 3 name, CELERY_RESULT_BACKEND): a real
worker (``taskq -A bkproj worker``) runs a task and the caller reads its result."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import uuid
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

import pytest

from tests.integration.workers import wait_until
from tests.servers import require_postgres, require_rabbitmq, require_redis

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[2]
PROJECT = """
import os
from taskq import Celery

if os.environ["BK_HOW"] == "keyword":
    app = Celery("bkproj", broker=os.environ["BK_BROKER"], backend=os.environ["BK_BACKEND"])
else:
    app = Celery("bkproj", broker=os.environ["BK_BROKER"])
    app.conf.update(CELERY_RESULT_BACKEND=os.environ["BK_BACKEND"])


@app.task
def add(x, y):
    return x + y


@app.task
def fail():
    raise ValueError("as planned")
"""


@contextmanager
def backend_urls(kind: str, tmp: Path, stack: ExitStack) -> Iterator[tuple[str, str]]:
    """(broker URL, backend URL as Celery writes it), in a space of this test's own."""
    sqlite_broker = f"sqlite:///{tmp}/broker.db"
    if kind == "redis":
        yield sqlite_broker, require_redis()  # results under their own task ids; forgotten at the end
    elif kind == "rpc":
        from tests.contract.rabbitmq_factories import fresh_vhost

        yield stack.enter_context(fresh_vhost(require_rabbitmq())), "rpc://"
    elif kind == "postgresql":
        from tests.contract.postgres_factories import drop_schema, unique_schema, with_schema

        url, schema = require_postgres(), unique_schema()
        yield sqlite_broker, "db+" + with_schema(url, schema)
        drop_schema(url, schema)
    elif kind == "mysql":
        from tests.contract.postgres_factories import mariadb_database

        with mariadb_database() as (url, name):
            yield sqlite_broker, f"db+{url.rsplit('/', 1)[0]}/{name}"
    else:
        yield sqlite_broker, f"db+sqlite:///{tmp}/results.db"


@pytest.mark.parametrize("how", ["keyword", "setting"])
@pytest.mark.parametrize("kind", ["redis", "rpc", "postgresql", "mysql", "sqlite"])
def test_celery_backend_urls_reach_taskqs_backends(
    kind: str, how: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given a project whose app names its backend as Celery users do
    module = f"bkproj_{uuid.uuid4().hex[:8]}"
    (tmp_path / f"{module}.py").write_text(textwrap.dedent(PROJECT))
    with ExitStack() as stack, backend_urls(kind, tmp_path, stack) as (broker, backend):
        env = {k: v for k, v in os.environ.items() if not k.startswith("TASKQ_")}
        env.update(BK_HOW=how, BK_BROKER=broker, BK_BACKEND=backend, PYTHONPATH=f"{tmp_path}{os.pathsep}{REPO}",
                   TASKQ_WORKER_HEARTBEAT_FILE=str(tmp_path / "hb"), TASKQ_BEAT_STORE_URL=f"sqlite:///{tmp_path}/b.db")
        for key in ("BK_HOW", "BK_BROKER", "BK_BACKEND"):
            monkeypatch.setenv(key, env[key])
        monkeypatch.syspath_prepend(str(tmp_path))
        log = tmp_path / "worker.log"
        worker = subprocess.Popen(
            [sys.executable, "-m", "taskq", "-A", module, "worker", "-P", "threads", "-c", "2", "-l", "INFO"],
            cwd=tmp_path, env=env, stdout=open(log, "wb"), stderr=subprocess.STDOUT,
        )
        try:
            wait_until(lambda: "ready:" in log.read_text() or worker.poll() is not None, 30, "worker start")
            assert worker.poll() is None, log.read_text()
            # When this process sends through the same app
            project = __import__(module)
            assert project.app.conf.result_backend == backend
            # Then the results come back through that backend
            assert project.add.delay(2, 3).get(timeout=30) == 5
            failed = project.fail.delay()
            with pytest.raises(Exception, match="as planned"):
                failed.get(timeout=30)
            assert failed.state == "FAILURE"
            failed.forget()
            project.app.close()
        finally:
            worker.send_signal(signal.SIGTERM)
            try:
                worker.wait(30)
            except subprocess.TimeoutExpired:
                worker.kill()
                worker.wait(10)
            sys.modules.pop(module, None)
