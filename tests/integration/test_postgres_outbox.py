"""Transactional enqueue to a Redis or RabbitMQ broker through the outbox in PostgreSQL: rolled back →
never sent; committed → relayed in order, each once; a relay killed with SIGKILL in the
middle re-sends at most one batch and loses no row."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import psycopg
import pytest

from taskq import TaskQ
from taskq.brokers.base import Broker
from taskq.brokers.postgres.migrations import outbox_channel
from tests.contract.postgres_factories import drop_schema, unique_schema, with_schema
from tests.contract.rabbitmq_factories import fresh_vhost
from tests.contract.redis_factories import delete_prefixed, unique_prefix
from tests.integration.workers import PROJECT, base_env, wait_until
from tests.servers import require_postgres, require_rabbitmq, require_redis

pytestmark = pytest.mark.slow


@contextmanager
def redis_broker() -> Iterator[tuple[str, dict[str, str]]]:
    url, prefix = require_redis(), unique_prefix()
    try:
        yield url, {"global_keyprefix": prefix}
    finally:
        delete_prefixed(url, prefix)


@contextmanager
def rabbitmq_broker() -> Iterator[tuple[str, dict[str, str]]]:
    with fresh_vhost(require_rabbitmq()) as url:
        yield url, {}


@pytest.fixture(params=["redis", "rabbitmq"])
def setup(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[TaskQ, dict[str, str], str]]:
    """A producer app on Redis or RabbitMQ with its outbox in PostgreSQL, the relay's
    environment, and the user's database URL."""
    pg_url, schema = require_postgres(), unique_schema()
    with (redis_broker() if request.param == "redis" else rabbitmq_broker()) as (broker_url, options):
        app = TaskQ("producer", broker=broker_url, backend="none", broker_transport_options=options,
                    outbox_url=with_schema(pg_url, schema))  # fmt: skip
        env = base_env(tmp_path, broker_url, "none", TASKQ_BROKER_TRANSPORT_OPTIONS=json.dumps(options),
                       TASKQ_OUTBOX_URL=with_schema(pg_url, schema))  # fmt: skip
        try:
            yield app, env, pg_url
        finally:
            app.close()
            drop_schema(pg_url, schema)


def relay(env: dict[str, str], *args: str) -> subprocess.Popen[str]:
    command = [sys.executable, "-m", "taskq", "outbox", "relay", "-A", "example_tasks:app", *args]
    return subprocess.Popen(command, cwd=PROJECT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def relay_is_asleep(pg_url: str, schema: str) -> bool:
    """The relay holds its advisory lock (the key of this schema's outbox) and its session is
    idle after a batch, waiting on LISTEN."""
    with psycopg.connect(pg_url) as conn:
        row = conn.execute(
            "SELECT 1 FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid, (SELECT hashtext(%s)::bigint AS k) key"
            " WHERE l.locktype = 'advisory' AND l.granted AND l.objsubid = 1"
            " AND l.objid = (key.k & 4294967295)::oid AND l.classid = ((key.k >> 32) & 4294967295)::oid"
            " AND a.state = 'idle' AND a.query = 'COMMIT'",
            (outbox_channel(schema),),
        ).fetchone()
    return row is not None


def drain_ids(broker: Broker) -> list[str]:
    """Every task id on the default queue, in the order the broker hands them out."""
    ids: list[str] = []
    while batch := broker.fetch(["celery"], 500, 1.0):
        ids += [d.envelope.id for d in batch if d.envelope]
        broker.ack(batch)
    return ids


def test_rolled_back_never_sent_committed_relayed_in_order(setup: tuple[TaskQ, dict[str, str], str]) -> None:
    app, env, pg_url = setup
    with psycopg.connect(pg_url) as conn:
        with pytest.raises(RuntimeError), app.transaction(conn):
            app.send_task("example_tasks.add", (0, 0), task_id="rolled-back")
            raise RuntimeError("rolled back")
        with app.transaction(conn):
            sent = [app.send_task("example_tasks.add", (i, i)).id for i in range(5)]
            sent += [r.id for r in app.send_many("example_tasks.add", [((i, i), {}) for i in range(20)])]
    assert app.broker.queue_length("celery") == 0  # nothing reaches Redis until the relay runs
    done = relay(env, "--once")
    out, err = done.communicate(timeout=60)
    assert done.returncode == 0, err
    assert out.strip() == "relayed 25 message(s)"
    assert drain_ids(app.broker) == sent
    # A running relay wakes on the next commit (NOTIFY) and stops cleanly on SIGTERM
    running = relay(env)
    schema = env["TASKQ_OUTBOX_URL"].rsplit("=", 1)[1]
    wait_until(lambda: relay_is_asleep(pg_url, schema), 30, "the relay to empty the outbox and sleep")
    with psycopg.connect(pg_url) as conn, app.transaction(conn):
        late = app.send_task("example_tasks.add", (9, 9)).id
    wait_until(lambda: app.broker.queue_length("celery") == 1, 3, "the relay to wake (its safety look is 5 s)")
    running.send_signal(signal.SIGTERM)
    out, err = running.communicate(timeout=20)
    assert running.returncode == 0, err
    assert out.strip() == "relayed 1 message(s)"
    assert drain_ids(app.broker) == [late]


def test_a_relay_killed_mid_batch_resends_that_batch_and_loses_nothing(
    setup: tuple[TaskQ, dict[str, str], str],
) -> None:
    # Given 3,000 committed rows in the outbox
    app, env, pg_url = setup
    schema = env["TASKQ_OUTBOX_URL"].rsplit("=", 1)[1]
    with psycopg.connect(pg_url) as conn, app.transaction(conn):
        sent = [r.id for r in app.send_many("example_tasks.add", [((i, i), {}) for i in range(3000)])]
    # And a stall between publishing a batch and deleting it (the middle of a batch, held open)
    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute(
            f'CREATE FUNCTION "{schema}".stall() RETURNS trigger LANGUAGE plpgsql AS'
            " $$ BEGIN PERFORM pg_sleep(2); RETURN NULL; END $$"
        )
        conn.execute(f'CREATE TRIGGER stall BEFORE DELETE ON "{schema}".outbox EXECUTE FUNCTION "{schema}".stall()')
    # When a relay (batches of 200) is killed with SIGKILL while its first batch is on Redis
    # but its delete is not committed
    victim = relay(env, "--batch", "200")
    wait_until(lambda: app.broker.queue_length("celery") > 0 or victim.poll() is not None, 30, "the first batch")
    victim.send_signal(signal.SIGKILL)
    victim.communicate(timeout=10)
    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute(f'DROP TRIGGER stall ON "{schema}".outbox')
    # And another relay finishes the job
    done = relay(env, "--once", "--batch", "200")
    assert done.communicate(timeout=60) and done.returncode == 0
    # Then every row reached the broker, and exactly the interrupted batch twice
    counts = Counter(drain_ids(app.broker))
    assert set(counts) == set(sent)
    twice = sorted(sent.index(task_id) for task_id, n in counts.items() if n == 2)
    assert twice == list(range(200)), "only the first batch, the one in flight, is sent again"
    assert max(counts.values()) == 2
    with psycopg.connect(pg_url) as conn:
        assert conn.execute(f'SELECT count(*) FROM "{schema}".outbox').fetchone() == (0,)
