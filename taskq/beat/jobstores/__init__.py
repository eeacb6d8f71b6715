"""Job stores by plugin name (APScheduler's names plus taskq's sqlite), imported on first use."""

from __future__ import annotations

import importlib
from typing import Any

from taskq.errors import ConfigurationError

PLUGINS = {
    "memory": "taskq.beat.jobstores.memory:MemoryJobStore",
    "sqlite": "taskq.beat.jobstores.sqlite:SQLiteJobStore",
    "redis": "taskq.beat.jobstores.redis:RedisJobStore",
    "sqlalchemy": "taskq.beat.jobstores.sqlalchemy:SQLAlchemyJobStore",
}


def create_jobstore(plugin: str, **options: Any) -> Any:
    target = PLUGINS.get(plugin)
    if target is None:
        raise ConfigurationError(f"no job store plugin {plugin!r} (known: {', '.join(sorted(PLUGINS))})")
    module_name, _, class_name = target.partition(":")
    return getattr(importlib.import_module(module_name), class_name)(**options)


__all__ = ["PLUGINS", "create_jobstore"]
