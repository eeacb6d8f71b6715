"""Where ``taskq queues`` looks for RabbitMQ's management API (no I/O here)."""

from __future__ import annotations

import pytest

from taskq.brokers.rabbitmq.management import management_url
from taskq.config import Settings


@pytest.mark.parametrize(
    ("broker_url", "expected"),
    [
        ("amqp://user:secret@rabbit.example:5673//", "http://rabbit.example:15672"),
        ("amqp://127.0.0.1/vhost", "http://127.0.0.1:15672"),
        ("amqp://guest:guest@[::1]:5672/", "http://[::1]:15672"),
    ],
)
def test_the_default_is_the_broker_host_on_port_15672(broker_url: str, expected: str) -> None:
    assert management_url(broker_url, Settings()) == expected


def test_the_setting_and_its_variable_win() -> None:
    settings = Settings.from_env({"TASKQ_BROKER_MANAGEMENT_URL": "https://mgmt.example:443/rabbit/"})
    assert management_url("amqp://rabbit.example//", settings) == "https://mgmt.example:443/rabbit"
