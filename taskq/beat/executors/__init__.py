"""Executors by plugin name (APScheduler's names), imported on first use so that the
optional ones (gevent, twisted, tornado) stay optional."""

from __future__ import annotations

import importlib
from typing import Any

from taskq.beat.executors.base import BaseExecutor
from taskq.errors import ConfigurationError

PLUGINS = {
    "threadpool": "taskq.beat.executors.pool:ThreadPoolExecutor",
    "processpool": "taskq.beat.executors.pool:ProcessPoolExecutor",
    "asyncio": "taskq.beat.executors.asyncio:AsyncIOExecutor",
    "gevent": "taskq.beat.executors.gevent:GeventExecutor",
    "twisted": "taskq.beat.executors.twisted:TwistedExecutor",
    "tornado": "taskq.beat.executors.tornado:TornadoExecutor",
    "debug": "taskq.beat.executors.debug:DebugExecutor",
    "broker": "taskq.beat.executors.broker:BrokerExecutor",
}


def create_executor(plugin: str, **options: Any) -> BaseExecutor:
    target = PLUGINS.get(plugin)
    if target is None:
        raise ConfigurationError(f"no executor plugin {plugin!r} (known: {', '.join(sorted(PLUGINS))})")
    module_name, _, class_name = target.partition(":")
    executor: BaseExecutor = getattr(importlib.import_module(module_name), class_name)(**options)
    return executor


__all__ = ["PLUGINS", "BaseExecutor", "create_executor"]
