"""Schedule stores by URL scheme: memory://, sqlite:///file.db, redis://host:port/db[?prefix=...]."""

from __future__ import annotations

from typing import Any

from taskq.beat.core.stores.base import ClaimResult, ScheduleStore, StoreError
from taskq.config import url_scheme
from taskq.display import redact
from taskq.errors import ConfigurationError

__all__ = ["ClaimResult", "ScheduleStore", "StoreError", "open_store"]


def open_store(url: str, broker: Any = None) -> ScheduleStore:
    """Open the store at ``url``. ``broker`` (the app's broker) lets the store enqueue inside
    its claim when both live on one server."""
    scheme = url_scheme(url)
    if scheme == "memory":
        from taskq.beat.core.stores.memory import MemoryScheduleStore

        return MemoryScheduleStore(url)
    if scheme == "sqlite":
        from taskq.beat.core.stores.sqlite import SQLiteScheduleStore

        return SQLiteScheduleStore(url, getattr(broker, "url", None))
    if scheme in ("redis", "rediss"):
        from taskq.beat.core.stores.redis import RedisScheduleStore

        return RedisScheduleStore(url, broker)
    raise ConfigurationError(f"beat store URL {redact(url)!r} is not supported (use sqlite:///file.db, redis:// or memory://)")
