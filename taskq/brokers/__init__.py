"""Brokers by URL scheme, imported on first use so optional drivers stay optional."""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

from taskq.config import check_url
from taskq.errors import ConfigurationError

if TYPE_CHECKING:
    from taskq.brokers.base import Broker
    from taskq.config import Settings

ALIASES = {
    "memory": "taskq.brokers.memory:MemoryBroker",
    "sqlite": "taskq.brokers.sqlite:SQLiteBroker",
    "redis": "taskq.brokers.redis:RedisBroker",
    "rediss": "taskq.brokers.redis:RedisBroker",
    "redis+cluster": "taskq.brokers.redis:RedisBroker",
    "redis+sentinel": "taskq.brokers.redis:RedisBroker",
    "amqp": "taskq.brokers.rabbitmq:RabbitMQBroker",
    "amqps": "taskq.brokers.rabbitmq:RabbitMQBroker",
    "kombu": "taskq.brokers.kombu:KombuBroker",
    "postgresql": "taskq.brokers.postgres:PostgresBroker",
    "postgres": "taskq.brokers.postgres:PostgresBroker",
}


def load_class(path: str) -> type:
    module_name, _, attr = path.partition(":")
    try:
        return getattr(importlib.import_module(module_name), attr)  # type: ignore[no-any-return]
    except (ImportError, AttributeError) as exc:
        raise ConfigurationError(f"{path} cannot be loaded: {exc}") from None


def create_broker(url: str, settings: Settings) -> Broker:
    """The broker for a URL; no connection is opened until first use."""
    cls = load_class(ALIASES[check_url(url, "broker")])
    broker: Broker = cls(url, settings)
    return broker
