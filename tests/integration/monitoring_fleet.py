"""A small fleet for the monitoring tests: taskq workers and a Celery worker on one broker.

Each test gets its own side channels: on PostgreSQL a schema of its own; on RabbitMQ a fresh vhost; on Redis a database
number of its own (kombu names the pub/sub channels ``/{db}.celeryev`` and
``/{db}.celery.pidbox``) and node names with a unique token, whose keys and binding
members are removed afterwards."""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
import textwrap
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import redis

from taskq import TaskQ
from tests.contract.rabbitmq_factories import fresh_vhost
from tests.integration.workers import PROJECT, wait_until
from tests.servers import require_rabbitmq, require_redis

REPO = Path(__file__).resolve().parents[2]
CELERY_PROJECT = """
import os

from celery import Celery

app = Celery("cproj", broker=os.environ["FLEET_BROKER"])


@app.task
def add(a, b):
    return a + b
"""


@dataclass
class Fleet:
    broker: str
    token: str
    tmp: Path
    procs: list[subprocess.Popen[bytes]] = field(default_factory=list)

    def env(self, **extra: str) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("TASKQ_", "CELERY_"))}
        env.update(
            TASKQ_BROKER_URL=self.broker, FLEET_BROKER=self.broker, PYTHONUNBUFFERED="1",
            TASKQ_BROKER_POLL_INTERVAL="0.02",
            PYTHONPATH=os.pathsep.join([str(PROJECT), str(self.tmp / "cproj"), str(REPO)]),
            **extra,
        )
        if self.broker.startswith("redis"):
            env["TASKQ_BROKER_TRANSPORT_OPTIONS"] = json.dumps({"global_keyprefix": f"{self.token}:"})
            env["TASKQ_RESULT_BACKEND"] = self.broker
            env["TASKQ_RESULT_KEY_PREFIX"] = f"{self.token}:celery-task-meta-"  # removed with the token's keys
        if self.broker.startswith("amqp"):
            env["TASKQ_BEAT_STORE_URL"] = f"sqlite:///{self.tmp}/beat.db"
        return env

    def name(self, label: str) -> str:
        return f"{label}-{self.token}@testhost"

    def start(self, cmd: list[str], log: str, **env: str) -> subprocess.Popen[bytes]:
        out = open(self.tmp / log, "ab")
        proc = subprocess.Popen(cmd, cwd=self.tmp, env=self.env(**env), stdout=out, stderr=subprocess.STDOUT)
        self.procs.append(proc)
        return proc

    def log(self, name: str) -> str:
        path = self.tmp / name
        return path.read_text(errors="replace") if path.exists() else ""

    def taskq_worker(self, label: str, *args: str, logfile: str | None = None, **env: str) -> subprocess.Popen[bytes]:
        """A worker named ``<label>-<token>@testhost`` on this fleet's queue; its log is
        ``<label>.log`` (or ``logfile``, relative to the test folder, when it writes one)."""
        log = f"{label}.log"
        cmd = [sys.executable, "-m", "taskq", "worker", "-A", "example_tasks:app", "-l", "info",
               "-n", self.name(label), "-Q", f"q-{self.token}", *args]
        proc = self.start(cmd, log, **env)
        ready_in = logfile or log
        wait_until(lambda: "ready:" in self.log(ready_in) or proc.poll() is not None, 30, "taskq worker start")
        assert proc.poll() is None, self.log(log)
        return proc

    def celery_worker(self, label: str) -> subprocess.Popen[bytes]:
        log = f"{label}.log"
        cmd = [sys.executable, "-m", "celery", "-A", "cproj", "worker", "-P", "solo", "-n", self.name(label),
               "-Q", f"cq-{self.token}", "--without-mingle", "--without-gossip", "-l", "info"]
        proc = self.start(cmd, log)
        wait_until(lambda: "ready." in self.log(log) or proc.poll() is not None, 60, "celery worker start")
        assert proc.poll() is None, self.log(log)
        return proc

    def run(self, *cmd: str, timeout: float = 60, **env: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(list(cmd), cwd=self.tmp, env=self.env(**env), capture_output=True, text=True,
                              timeout=timeout)

    def taskq(self, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
        """``taskq ARGS -A example_tasks:app`` as a user runs it."""
        return self.run(sys.executable, "-m", "taskq", *args, "-A", "example_tasks:app", **env)

    def producer(self) -> TaskQ:
        app = TaskQ("producer", broker=self.broker)
        options = self.env().get("TASKQ_BROKER_TRANSPORT_OPTIONS")
        if options:
            app.conf.broker_transport_options = json.loads(options)
        return app

    def stop_all(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                proc.terminate()
        for proc in self.procs:
            try:
                proc.wait(20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(10)


@contextmanager
def fleet(kind: str, tmp: Path) -> Iterator[Fleet]:
    token = uuid.uuid4().hex[:10]
    (tmp / "cproj").mkdir()
    (tmp / "cproj" / "cproj.py").write_text(textwrap.dedent(CELERY_PROJECT))
    if kind == "sqlite":
        f = Fleet(f"sqlite:///{tmp}/broker.db", token, tmp)
        try:
            yield f
        finally:
            f.stop_all()
        return
    if kind == "postgresql":
        from tests.contract.postgres_factories import drop_schema, unique_schema, with_schema
        from tests.servers import require_postgres

        server, schema = require_postgres(), unique_schema()
        f = Fleet(with_schema(server, schema), token, tmp)
        try:
            yield f
        finally:
            f.stop_all()
            drop_schema(server, schema)
        return
    if kind == "rabbitmq":
        with fresh_vhost(require_rabbitmq()) as url:
            f = Fleet(url, token, tmp)
            try:
                yield f
            finally:
                f.stop_all()
        return
    base = require_redis().rsplit("/", 1)[0]
    url = f"{base}/{random.randint(4, 15)}"  # pub/sub channels are named after the db
    f = Fleet(url, token, tmp)
    try:
        yield f
    finally:
        f.stop_all()
        clean_redis(url, token)


def clean_redis(url: str, token: str) -> None:
    client = redis.Redis.from_url(url)
    for key in client.scan_iter(match=f"*{token}*"):
        client.delete(key)
    for key in client.scan_iter(match="_kombu.binding.*"):
        mine = [m for m in client.smembers(key) if token.encode() in m]
        if mine:
            client.srem(key, *mine)
