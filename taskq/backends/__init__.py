"""Result backends by URL scheme, imported on first use."""

from __future__ import annotations

from typing import TYPE_CHECKING

from taskq.brokers import load_class
from taskq.config import check_url
from taskq.display import redact
from taskq.errors import ConfigurationError

if TYPE_CHECKING:
    from taskq.backends.base import ResultBackend
    from taskq.config import Settings

ALIASES = {
    "memory": "taskq.backends.memory:MemoryBackend",
    "sqlite": "taskq.backends.sqlite:SQLiteBackend",
    "redis": "taskq.backends.redis:RedisBackend",
    "rediss": "taskq.backends.redis:RedisBackend",
    "db": "taskq.backends.database:DatabaseBackend",
    "redis+cluster": "taskq.backends.redis:RedisBackend",
    "redis+sentinel": "taskq.backends.redis:RedisBackend",
    "rpc": "taskq.backends.rpc:RPCBackend",
}


def create_backend(url: str, settings: Settings) -> ResultBackend:
    scheme = check_url(url, "result backend")
    if scheme not in ALIASES:
        raise ConfigurationError(
            f"result backend URL {redact(url)!r}: {scheme}:// cannot store results"
            " (use sqlite, redis, db+postgresql or rpc)"
        )
    backend: ResultBackend = load_class(ALIASES[scheme])(url, settings)
    return backend
