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


def test_unknown_setting_is_one_warning_and_bad_values_are_clear_errors(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    # An unknown name is kept and said once (issue 19: never an error, never silently dropped).
    app = TaskQ("x", brokr_url="memory://")
    app.conf.brokr_url = "memory://again"
    warned = [r.getMessage() for r in caplog.records if "brokr_url" in r.getMessage()]
    assert warned == ["unknown setting 'brokr_url' (did you mean broker_url?); kept in app.conf but unused by taskq"]
    assert app.conf["brokr_url"] == "memory://again"
    monkeypatch.setenv("TASKQ_MAX_DELIVERIES", "many")
    with pytest.raises(ConfigurationError, match="TASKQ_MAX_DELIVERIES"):
        Settings.from_env()


@pytest.mark.parametrize(
    ("url", "text"),
    [
        ("mongodb://x", "not supported"),
        ("nonsense", "not supported"),
        ("kombu+://", "names no kombu transport"),
        ("foo://x", "not supported"),
        ("redis//127.0.0.1:6379/0", "not supported"),
        ("sqlite://host/x.db", "must look like sqlite:///relative.db"),
        ("sqlite://", "names no file"),
        ("sqlite:///", "names no file"),
        ("redis://127.0.0.1:notaport/0", "the port must be a number"),
        ("amqp://guest:guest@127.0.0.1:70000//", "the port must be a number"),
        ("redis://127.0.0.1:6379/abc", "the path must be a database number"),
        ("rediss://127.0.0.1:6379/0/1", "the path must be a database number"),
        ("redis://127.0.0.1:6379/²", "the path must be a database number"),
    ],
)
def test_bad_broker_urls(url: str, text: str) -> None:
    with pytest.raises(ConfigurationError, match=text):
        TaskQ("x", broker=url).finalize()
    with pytest.raises(ConfigurationError, match=text):  # as a result backend too
        TaskQ("x", broker="memory://", backend=url).check()
    app = TaskQ("x", broker="memory://")
    app.conf.beat_store_url = url  # and as the beat store
    with pytest.raises(ConfigurationError, match=text):
        app.check()


@pytest.mark.parametrize(
    "url", ["redis://127.0.0.1:6379", "redis://127.0.0.1:6379/", "redis://:pw@127.0.0.1/15?socket_timeout=2",
            "sqlite:///rel.db", "sqlite:////abs/x.db", "amqp://guest:guest@127.0.0.1:5672//", "memory://"],
)
def test_good_urls_pass_the_check(url: str) -> None:
    TaskQ("x", broker=url).check()


@pytest.mark.parametrize("seconds", [float("inf"), float("-inf"), float("nan"), 1e300, 1e12])
def test_a_countdown_or_expiry_beyond_any_date_is_a_configuration_error(seconds: float) -> None:
    app = TaskQ("x", broker="memory://", backend="none")
    with pytest.raises(ConfigurationError, match="countdown must be a finite number of seconds"):
        app.send_task("t.add", countdown=seconds)
    with pytest.raises(ConfigurationError, match="expires must be a finite number of seconds"):
        app.send_task("t.add", expires=seconds)


def test_amqp_has_no_default_result_backend() -> None:
    assert TaskQ("x", broker="amqp://guest@localhost//").conf.result_backend_url is None
