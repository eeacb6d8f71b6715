from __future__ import annotations

import pytest

from taskq import TaskQ
from taskq.config import Settings
from taskq.errors import ConfigurationError


def test_defaults_are_the_embedded_sqlite_broker_and_its_backend(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("TASKQ_BROKER_URL", raising=False)
    app = TaskQ("x")
    assert app.conf.broker_url == "sqlite:///taskq.db"
    assert app.conf.result_backend_url == "sqlite:///taskq.db"
    assert app.conf.beat_store == "sqlite:///taskq.db"


def test_keyword_beats_conf_beats_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TASKQ_BROKER_URL", "memory://env")
    monkeypatch.setenv("TASKQ_RECOVERY_TIME", "7.5")
    monkeypatch.setenv("TASKQ_TASK_ACKS_LATE", "false")
    monkeypatch.setenv("TASKQ_ACCEPT_CONTENT", "json,msgpack")
    app = TaskQ("x")
    assert app.conf.broker_url == "memory://env"
    assert app.conf.recovery_time == 7.5 and app.conf.task_acks_late is False
    assert app.conf.accept_content == ("json", "msgpack")
    app.conf.broker_url = "memory://conf"
    assert app.conf.broker_url == "memory://conf"
    pinned = TaskQ("y", broker="memory://kw")
    pinned.conf.broker_url = "memory://conf"
    assert pinned.finalize().broker_url == "memory://kw"


def test_conf_freezes_when_a_worker_starts() -> None:
    app = TaskQ("x", broker="memory://f")
    app.finalize()
    with pytest.raises(ConfigurationError, match="frozen"):
        app.conf.recovery_time = 1


def test_unknown_setting_and_bad_values_are_clear_errors(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(ConfigurationError, match="unknown setting 'brokr_url'"):
        TaskQ("x", brokr_url="memory://")
    monkeypatch.setenv("TASKQ_MAX_DELIVERIES", "many")
    with pytest.raises(ConfigurationError, match="TASKQ_MAX_DELIVERIES"):
        Settings.from_env()


@pytest.mark.parametrize("url", ["mongodb://x", "nonsense", "kombu+://"])
def test_bad_broker_urls(url: str) -> None:
    with pytest.raises(ConfigurationError):
        TaskQ("x", broker=url).finalize()


def test_amqp_has_no_default_result_backend() -> None:
    assert TaskQ("x", broker="amqp://guest@localhost//").conf.result_backend_url is None
