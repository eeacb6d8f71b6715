"""The PostgreSQL broker's tables: created by `taskq db init` or on first use, upgraded by
`taskq db migrate` from numbered migrations, each applied once."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from taskq.brokers.base import Publication
from taskq.brokers.postgres import PostgresBroker, migrations
from taskq.errors import BrokerError
from tests.contract.postgres_factories import drop_schema, unique_schema, with_schema
from tests.contract.test_broker_contract import envelope
from tests.integration.test_cli import assert_one_line_error, taskq
from tests.integration.workers import base_env
from tests.servers import require_postgres


@pytest.fixture
def schema() -> Iterator[tuple[str, str]]:
    url, name = require_postgres(), unique_schema()
    yield url, name
    drop_schema(url, name)


def versions(url: str, schema: str) -> list[int]:
    with psycopg.connect(url) as conn:
        return [r[0] for r in conn.execute(f'SELECT version FROM "{schema}".taskq_migrations ORDER BY 1')]


def test_db_init_creates_the_tables_and_migrate_finds_nothing_to_do(schema: tuple[str, str], tmp_path: Path) -> None:
    url, name = schema
    env = base_env(tmp_path, with_schema(url, name), "db+" + with_schema(url, name))
    created = taskq("db", "init", "-A", "example_tasks:app", env=env)
    assert created.returncode == 0, created.stderr
    assert f"schema '{name}': tables created at version {migrations.LATEST}" in created.stdout
    assert "result backend postgresql: celery_taskmeta, celery_tasksetmeta and taskq_counters ready" in created.stdout
    with psycopg.connect(url) as conn:
        assert conn.execute("SELECT to_regclass(%s)", (f'"{name}".celery_taskmeta',)).fetchone() != (None,)
    assert versions(url, name) == [m[0] for m in migrations.MIGRATIONS]
    again = taskq("db", "migrate", "-A", "example_tasks:app", env=env)
    assert again.returncode == 0 and "up to date" in again.stdout
    init_again = taskq("db", "init", "-A", "example_tasks:app", env=env)
    assert f"schema '{name}': already at version {migrations.LATEST}" in init_again.stdout


def test_db_commands_on_a_broker_that_is_not_postgresql_fail_in_one_line(tmp_path: Path) -> None:
    env = base_env(tmp_path, f"sqlite:///{tmp_path}/b.db")
    assert_one_line_error(
        taskq("db", "migrate", "-A", "example_tasks:app", env=env), "needs a postgresql:// broker or an outbox_url"
    )
    env = base_env(tmp_path, "postgresql://postgres@127.0.0.1/test?schema=Not-Valid")
    assert_one_line_error(taskq("db", "init", "-A", "example_tasks:app", env=env), "schema 'Not-Valid' must be")


def test_a_later_migration_is_refused_until_migrate_applies_it_once(
    schema: tuple[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given a schema made by this version, and a later taskq that adds a column
    url, name = schema
    with psycopg.connect(url, autocommit=True) as conn:
        migrations.migrate(conn, name)
    now, next_ = migrations.LATEST, migrations.LATEST + 1
    later = [*migrations.MIGRATIONS, (next_, "a note column", 'ALTER TABLE "{s}".messages ADD COLUMN note text')]
    monkeypatch.setattr(migrations, "MIGRATIONS", later)
    monkeypatch.setattr(migrations, "LATEST", next_)
    # When the later taskq starts on it, it refuses with the command to run
    broker = PostgresBroker(with_schema(url, name))
    refused = f"is at version {now}, this taskq needs {next_}: run `taskq db migrate"
    with pytest.raises(BrokerError, match=refused):
        broker.queue_length("q")
    # Then migrate applies only the new version, once, and the broker works
    with psycopg.connect(url, autocommit=True) as conn:
        assert migrations.migrate(conn, name) == [next_]
        assert migrations.migrate(conn, name) == []
        assert conn.execute(f'SELECT note FROM "{name}".messages').fetchall() == []
    assert versions(url, name) == [*range(1, now + 1), next_]
    broker.publish("q", envelope())
    assert broker.queue_length("q") == 1
    broker.close()


def test_many_brokers_starting_on_an_empty_schema_create_it_once(schema: tuple[str, str]) -> None:
    url, name = schema
    errors: list[BaseException] = []
    start = threading.Barrier(6)

    def first_use() -> None:
        broker = PostgresBroker(with_schema(url, name))
        try:
            start.wait()
            broker.publish_many([Publication("q", envelope())])
        except BaseException as exc:
            errors.append(exc)
        finally:
            broker.close()

    threads = [threading.Thread(target=first_use) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert versions(url, name) == [m[0] for m in migrations.MIGRATIONS]
    check = PostgresBroker(with_schema(url, name))
    assert check.queue_length("q") == 6
    check.close()


def test_taskq_db_migrate_upgrades_a_version_1_schema(schema: tuple[str, str], tmp_path: Path) -> None:
    # Given a schema as the first release of the PostgreSQL broker left it, with a message in it
    url, name = schema
    with psycopg.connect(url, autocommit=True) as conn:
        migrations.migrate(conn, name, migrations.MIGRATIONS[:1])
        conn.execute(f'INSERT INTO "{name}".messages (queue, payload) VALUES (%s, %s)', ("q", envelope().to_bytes()))
    with pytest.raises(BrokerError, match="run `taskq db migrate"):
        PostgresBroker(with_schema(url, name)).queue_length("q")
    # When the user runs the migration
    env = base_env(tmp_path, with_schema(url, name))
    done = taskq("db", "migrate", "-A", "example_tasks:app", env=env)
    # Then the later versions are applied, the message kept, and the broker works again
    assert done.returncode == 0, done.stderr
    later = [m[0] for m in migrations.MIGRATIONS[1:]]
    assert f"applied version(s) {', '.join(map(str, later))}" in done.stdout
    assert versions(url, name) == [m[0] for m in migrations.MIGRATIONS]
    broker = PostgresBroker(with_schema(url, name))
    assert broker.queue_length("q") == 1
    broker.close()
