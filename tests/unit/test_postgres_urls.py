"""URLs of the PostgreSQL broker and the db+ result backends: parsed without I/O, bad ones
refused with one clear error."""

from __future__ import annotations

import pytest

from taskq import TaskQ
from taskq.backends.database import engine_url
from taskq.brokers.postgres.connection import split_url
from taskq.config import check_url
from taskq.errors import ConfigurationError


def test_schema_comes_from_the_url_and_other_parameters_go_to_libpq() -> None:
    assert split_url("postgresql://u:p@h:5433/db?schema=jobs&sslmode=require") == (
        "postgresql://u:p@h:5433/db?sslmode=require",
        "jobs",
    )
    assert split_url("postgres://h/db") == ("postgresql://h/db", "taskq")


@pytest.mark.parametrize("schema", ["Jobs", "a-b", "1st", "x" * 51, ""])
def test_schema_names_that_would_need_quoting_rules_are_refused(schema: str) -> None:
    with pytest.raises(ConfigurationError, match="must be lower-case letters, digits and _"):
        split_url(f"postgresql://h/db?schema={schema}")


def test_db_urls_pick_the_installed_drivers_and_keep_schema_apart() -> None:
    assert engine_url("db+postgresql://u@h/db?schema=r") == ("postgresql+psycopg://u@h/db", "r")
    assert engine_url("db+mysql://root@h:3306/db") == ("mysql+pymysql://root@h:3306/db", None)
    assert engine_url("db+postgresql+psycopg2://h/db") == ("postgresql+psycopg2://h/db", None)
    assert engine_url("db+sqlite:////tmp/r.db") == ("sqlite:////tmp/r.db", None)


def test_db_urls_are_result_backends_only() -> None:
    assert check_url("db+postgresql://h/db", "result backend") == "db"
    assert check_url("postgresql://h/db", "broker") == "postgresql"
    with pytest.raises(ConfigurationError, match="are result backends"):
        check_url("db+postgresql://h/db", "broker")
    with pytest.raises(ConfigurationError, match="is not supported"):
        check_url("db+oracle://h/db", "result backend")
    with pytest.raises(ConfigurationError):
        TaskQ("x", broker="memory://", backend="db+mongodb://h/db").finalize()


def test_a_postgresql_broker_url_is_accepted_without_connecting() -> None:
    app = TaskQ("x", broker="postgresql://nobody@127.0.0.1:1/none?schema=s", backend="none")
    app.finalize()
    assert app.conf.result_backend_url is None


def test_without_psycopg_the_error_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    from taskq.brokers.postgres import PostgresBroker, connection

    monkeypatch.setattr(connection, "psycopg", None)
    with pytest.raises(ConfigurationError, match=r"pip install 'taskq\[postgresql\]'"):
        PostgresBroker("postgresql://h/db")
