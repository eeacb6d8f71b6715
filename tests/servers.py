"""Finding the real servers tests need: skip on a laptop without them, FAIL under CI=true."""

from __future__ import annotations

import atexit
import os
import shutil
import socket
import subprocess
import tempfile
import time
from urllib.parse import urlsplit

import pytest

IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")

REDIS_URL = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0")
AMQP_URL = os.environ.get("AMQP_URL", "amqp://guest:guest@127.0.0.1:5672//")


def reachable(url: str, default_port: int) -> bool:
    parts = urlsplit(url)
    try:
        with socket.create_connection((parts.hostname or "127.0.0.1", parts.port or default_port), timeout=1.0):
            return True
    except OSError:
        return False


def require(url: str, default_port: int, what: str) -> str:
    """Return the URL if its server answers; otherwise skip (laptop) or fail (CI)."""
    if reachable(url, default_port):
        return url
    reason = f"{what} is not reachable at {url}"
    if IN_CI:
        pytest.fail(f"{reason}, and CI=true requires it")
    pytest.skip(reason)


_session_redis: str | None = None


def require_redis() -> str:
    """REDIS_URL if set, else 127.0.0.1:6379, else a redis-server this test process starts
    on a free port from the installed binary (stopped when the process exits)."""
    global _session_redis
    if reachable(REDIS_URL, 6379) or "REDIS_URL" in os.environ:
        return require(REDIS_URL, 6379, "Redis")
    binary = shutil.which("redis-server")
    if _session_redis is None and binary:
        port = free_port()
        proc = subprocess.Popen(
            [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
             "--dir", tempfile.mkdtemp(prefix="taskq-redis-")],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        atexit.register(proc.terminate)
        url, deadline = f"redis://127.0.0.1:{port}/0", time.monotonic() + 10
        while not reachable(url, port) and time.monotonic() < deadline:
            time.sleep(0.05)
        _session_redis = url if reachable(url, port) else None
    return _session_redis or require(REDIS_URL, 6379, "Redis")


def require_rabbitmq() -> str:
    return require(AMQP_URL, 5672, "RabbitMQ")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def free_ports(count: int) -> list[int]:
    """``count`` distinct free ports: each socket stays bound until all are chosen (one at a
    time, the kernel may hand the same port out twice: a Sentinel test once got its replica's
    port for a sentinel)."""
    sockets = [socket.socket() for _ in range(count)]
    try:
        for s in sockets:
            s.bind(("127.0.0.1", 0))
        return [int(s.getsockname()[1]) for s in sockets]
    finally:
        for s in sockets:
            s.close()


POSTGRES_URL = os.environ.get("POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test")
MARIADB_URL = os.environ.get("MARIADB_URL", "mysql://root@127.0.0.1:3306/test")


def require_postgres() -> str:
    return require(POSTGRES_URL, 5432, "PostgreSQL")


def require_mariadb() -> str:
    return require(MARIADB_URL, 3306, "MariaDB")
