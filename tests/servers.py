"""Finding the real servers tests need: skip on a laptop without them, FAIL under CI=true."""

from __future__ import annotations

import os
import socket
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


def require_redis() -> str:
    return require(REDIS_URL, 6379, "Redis")


def require_rabbitmq() -> str:
    return require(AMQP_URL, 5672, "RabbitMQ")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])
