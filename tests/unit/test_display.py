"""The one redaction helper and the one escaping helper, and the places that must use them."""

from __future__ import annotations

import pytest

from taskq import TaskQ
from taskq.config import check_url
from taskq.display import printable, redact, scrub
from taskq.errors import ConfigurationError

SECRET = "S3cr3t-pw"


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("redis://:s3cret@host:6379/0?prefix=p", "redis://:***@host:6379/0?prefix=p"),
        ("redis://user:pw@host/0", "redis://user:***@host/0"),
        ("sqlite:///beat.db", "sqlite:///beat.db"),
        ("redis://user@host/0", "redis://user@host/0"),
        ("redis://host:6379/0", "redis://host:6379/0"),
        ("amqp://guest:pa/ss@h//", "amqp://guest:***@h//"),  # an unescaped "/" in the password
        ("kombu+redis://:p%40w@h/0", "kombu+redis://:***@h/0"),
        ("amqp://u:p1@h1;amqp://u:p2@h2//", "amqp://u:***@h1;amqp://u:***@h2//"),
        ("redis://h/0?db=1&password=xx", "redis://h/0?db=1&password=***"),
        ("error at 'redis://:pw@h:1/0': refused", "error at 'redis://:***@h:1/0': refused"),
        ("amqps://h//?ssl_options=%7B%27password%27%3A+%27k%27%7D&x=1", "amqps://h//?ssl_options=***&x=1"),
        ("amqps://h//?ssl_options=%7B%27ca_certs%27%3A+%27ca.pem%27%7D", "amqps://h//?ssl_options=%7B%27ca_certs%27%3A+%27ca.pem%27%7D"),
    ],
)
def test_redact_hides_every_password_form(url: str, shown: str) -> None:
    assert redact(url) == shown


def test_scrub_hides_a_password_quoted_without_its_url() -> None:
    url = "amqp://u:p%2Fss-word@h//"
    assert scrub("driver said: bad login p/ss-word and p%2Fss-word", url) == "driver said: bad login *** and ***"


@pytest.mark.parametrize(
    ("raw", "shown"),
    [
        ("abc-123", "abc-123"),
        ("a\nINFO forged", "a\\nINFO forged"),
        ("\x1b[31mred", "\\x1b[31mred"),
        ("back\\slash", "back\\\\slash"),
        ("tab\tcr\r nul\x00 del\x7f sep\u2028", "tab\\tcr\\r nul\\x00 del\\x7f sep\\u2028"),
        ("ünïcode ✓", "ünïcode ✓"),
    ],
)
def test_printable_escapes_control_characters(raw: str, shown: str) -> None:
    assert printable(raw) == shown
    assert "\n" not in printable(raw) and "\x1b" not in printable(raw)


def test_app_repr_and_config_errors_hide_the_password() -> None:
    app = TaskQ("t", broker=f"redis://:{SECRET}@127.0.0.1:6379/0")
    assert SECRET not in repr(app) and "***" in repr(app)
    for url in (f"nope://u:{SECRET}@h/", f"kombu+://u:{SECRET}@h/"):
        with pytest.raises(ConfigurationError) as info:
            check_url(url)
        assert SECRET not in str(info.value)


def test_settings_and_signer_reprs_hide_secrets() -> None:
    from taskq.signing import signer_for

    app = TaskQ("t", broker=f"redis://:{SECRET}@h/0", backend=f"redis://:{SECRET}@h/1", signing_key=SECRET)
    shown = repr(app.conf) + repr(signer_for(app.conf)) + repr(app._send_plan("t.x", {}))
    assert SECRET not in shown and "redis://:***@h/0" in shown and "signing_key='***'" in shown


def test_rabbitmq_url_error_hides_the_password() -> None:
    from taskq.brokers.rabbitmq import connection_parameters

    with pytest.raises(ConfigurationError) as info:
        connection_parameters(f"amqp://u:{SECRET}@h:notaport//")
    assert SECRET not in str(info.value) and "***" in str(info.value)


def test_redis_job_store_quotes_the_password_and_prefix() -> None:
    from taskq.beat.core.stores.redis import split_prefix
    from taskq.beat.jobstores.redis import RedisJobStore

    store = RedisJobStore(host="h", port=1, db=2, password="a/b@c#d", prefix="p&x=1")
    url, prefix = split_prefix(store.url)
    import redis

    kwargs = redis.ConnectionPool.from_url(url).connection_kwargs
    assert (kwargs["host"], kwargs["port"], kwargs["db"], kwargs["password"]) == ("h", 1, 2, "a/b@c#d")
    assert prefix == "p&x=1"
    assert "a/b@c#d" not in redact(store.url)
