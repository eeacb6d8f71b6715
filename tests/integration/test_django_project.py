"""Issue 19 point 6: examples/django-project (Celery's "First steps with Django" layout) runs on
taskq: CELERY_* settings through the namespace, tasks found by autodiscover_tasks() in
INSTALLED_APPS, and delay_on_commit() sending only what commits."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from tests.integration.workers import wait_until

pytest.importorskip("django")

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[2]
PROJECT = REPO / "examples" / "django-project"

SCRIPT = """
import json
from django.db import transaction
from django.test import Client
from orders.models import Order
from orders.tasks import ship_order
from proj.celery import app

def queued():
    return app.broker.queue_length("celery")

with transaction.atomic():
    order = Order.objects.create(item="book")
    ship_order.delay_on_commit(order.pk)
    inside = queued()
after_commit = queued()
refused = Client().post("/orders/", {"item": ""})
after_rollback = queued()
placed = Client().post("/orders/", {"item": "pen"})
print(json.dumps({"inside": inside, "after_commit": after_commit, "refused": refused.status_code,
                  "after_rollback": after_rollback, "placed": placed.json()["order"], "queued": queued()}))
"""


def manage(env: dict[str, str], *args: str) -> str:
    done = subprocess.run(
        [sys.executable, "manage.py", *args], cwd=PROJECT, env=env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def statuses(db: Path) -> dict[str, str]:
    with sqlite3.connect(db) as conn:
        return dict(conn.execute("SELECT item, status FROM orders_order").fetchall())


def test_the_django_project_sends_on_commit_and_the_worker_runs_its_tasks(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TASKQ_", "CELERY_", "DJANGO_"))}
    env.update(
        DJANGO_DATA_DIR=str(tmp_path), PYTHONDONTWRITEBYTECODE="1", PYTHONPATH=f"{PROJECT}{os.pathsep}{REPO}",
        TASKQ_WORKER_HEARTBEAT_FILE=str(tmp_path / "hb"), TASKQ_BEAT_STORE_URL=f"sqlite:///{tmp_path}/beat.db",
    )
    manage(env, "migrate", "-v", "0")

    # Given orders placed in transactions, before any worker runs
    report = json.loads(manage(env, "shell", "-c", SCRIPT).strip().splitlines()[-1])

    # Then a task is queued only once its transaction commits, and never when it rolls back
    assert report["inside"] == 0 and report["after_commit"] == 1
    assert report["refused"] == 400 and report["after_rollback"] == 1
    assert report["queued"] == 2

    # When the worker starts (-A proj: the package's celery.py, settings from the CELERY_ namespace)
    log = tmp_path / "worker.log"
    worker = subprocess.Popen(
        [sys.executable, "-m", "taskq", "-A", "proj", "worker", "-l", "INFO", "-c", "2"],
        cwd=PROJECT, env=env, stdout=open(log, "wb"), stderr=subprocess.STDOUT,
    )
    try:
        # Then it found orders.tasks through INSTALLED_APPS and shipped both committed orders
        wait_until(lambda: set(statuses(tmp_path / "db.sqlite3").values()) == {"shipped"} or worker.poll() is not None,
                   60, "both orders shipped")
        assert statuses(tmp_path / "db.sqlite3") == {"book": "shipped", "pen": "shipped"}, log.read_text()
        wait_until(lambda: log.read_text().count("succeeded") >= 2, 30, "both tasks logged as done")
        text = log.read_text()
        assert "orders.tasks.ship_order" in text and "proj.celery.debug_task" in text
        assert text.count("succeeded") == 2  # the rolled-back order's task was never sent
        assert f"broker=sqlite:///{tmp_path}/broker.sqlite3" in text  # CELERY_BROKER_URL was read
    finally:
        worker.send_signal(signal.SIGTERM)
        try:
            worker.wait(30)
        except subprocess.TimeoutExpired:
            worker.kill()
            worker.wait(10)
