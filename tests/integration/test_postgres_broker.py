"""The PostgreSQL broker as a worker uses it: no polling while idle, woken by NOTIFY and by
the due time of a delayed message; counted on a server of its own with pg_stat_statements."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from taskq import TaskQ
from taskq.config import Settings
from tests.integration.postgres_node import ThrowawayPostgres
from tests.integration.workers import WorkerFactory, base_env, wait_until

pytestmark = pytest.mark.slow

KEEPING = "%WHERE queue = ANY(%) AND claim_owner = %"  # extend_owner: claims kept from another process


@pytest.fixture(scope="module")
def counted_server() -> Iterator[ThrowawayPostgres]:
    server = ThrowawayPostgres("shared_preload_libraries=pg_stat_statements", "pg_stat_statements.track=all")
    try:
        with psycopg.connect(server.url, autocommit=True) as conn:
            conn.execute("CREATE EXTENSION pg_stat_statements")
            conn.execute("CREATE DATABASE taskq")
        yield server
    finally:
        server.stop()


def statements_in(server: ThrowawayPostgres, database: str, like: str = "%") -> int:
    """Statements executed in ``database`` since the last reset, as the server counted them."""
    with psycopg.connect(server.url, autocommit=True) as conn:
        row = conn.execute(
            "SELECT coalesce(sum(calls), 0) FROM pg_stat_statements s JOIN pg_database d ON d.oid = s.dbid"
            " WHERE d.datname = %s AND s.query LIKE %s",
            (database, like),
        ).fetchone()
    return int(row[0]) if row else 0


def reset_statements(server: ThrowawayPostgres) -> None:
    with psycopg.connect(server.url, autocommit=True) as conn:
        conn.execute("SELECT pg_stat_statements_reset()")


def test_idle_worker_sends_at_most_one_query_per_recovery_period_and_wakes_on_notify(
    counted_server: ThrowawayPostgres, tmp_path: Path
) -> None:
    # Given a worker (one fetch loop) idle on an empty queue, with a 4 s recovery time
    url = counted_server.database_url("taskq") + "?schema=idle"
    env = base_env(tmp_path, url, f"sqlite:///{tmp_path}/results.db", TASKQ_RECOVERY_TIME="4")
    workers = WorkerFactory(tmp_path, env)
    producer = TaskQ("producer", broker=url, backend=f"sqlite:///{tmp_path}/results.db")
    try:
        workers.start("-c", "1")
        wait_until(lambda: statements_in(counted_server, "taskq", "%SKIP LOCKED%") >= 1, 20, "first claim")
        reset_statements(counted_server)
        # When it stays idle for 6 s (the worker's own fetch calls return every second)
        time.sleep(6)
        # Then its fetching sent at most one statement per recovery period (6 s / 4 s -> at
        # most 2), where a fetch that queried on each call would have sent 6, and a poll loop
        # hundreds; so did its control mailbox (a safety look each period; requests wake it
        # by NOTIFY). The prefork supervisor, which keeps its children's claims alive every
        # third of the recovery time (a task holding the GIL cannot keep its own), sends
        # nothing while their statistics records show no claim held and no task running. And
        # the worker-heartbeat event (every 2 s) is one INSERT, whose trigger's NOTIFY counts
        # as one more.
        kept = statements_in(counted_server, "taskq", KEEPING)
        control = statements_in(counted_server, "taskq", "%pidbox%")
        beats = statements_in(counted_server, "taskq", '%INSERT INTO "idle".events%')
        notified = statements_in(counted_server, "taskq", "%pg_notify%")
        idle = statements_in(counted_server, "taskq") - kept - control - beats - notified
        assert idle <= 2, f"an idle worker's fetching sent {idle} statements in 6 s"
        assert control <= 2, f"an idle worker's mailbox sent {control} statements in 6 s"
        assert kept == 0, f"keeping an idle worker's claims took {kept} statements in 6 s"
        assert 1 <= beats <= 4 and notified <= beats, (beats, notified)
        # And a task sent now runs at once: the NOTIFY woke the worker, not its 4 s safety look
        start = time.monotonic()
        assert producer.send_task("example_tasks.add", (2, 3)).get(timeout=10) == 5
        assert time.monotonic() - start < 2.0
        # And a delayed task runs at its due time, which the last claim reported (no notify then)
        sent = time.time()
        ran_at = producer.send_task("example_tasks.stamp", ("due",), countdown=1.5).get(timeout=15)
        assert sent + 1.5 <= ran_at < sent + 3.5
    finally:
        producer.close()
        workers.close()


def _rows_read(plan: dict[str, object]) -> int:
    """Rows the plan's scans of the messages table produced, summed over the whole tree."""
    total = 0
    if plan.get("Relation Name") == "messages" and "Scan" in str(plan.get("Node Type")):
        total += int(plan.get("Actual Rows", 0)) * int(plan.get("Actual Loops", 1))  # type: ignore[call-overload]
    for child in plan.get("Plans", []):  # type: ignore[union-attr]
        total += _rows_read(child)
    return total


@pytest.mark.parametrize("queue_count", [1, 2])
def test_a_claim_walks_the_index_and_never_reads_the_whole_backlog(tmp_path: Path, queue_count: int) -> None:
    from taskq.brokers.base import Publication
    from tests.contract.postgres_factories import postgres_broker
    from tests.contract.test_broker_contract import envelope

    # Given 20,000 waiting messages in a table the planner has no statistics for yet
    broker, cleanup = postgres_broker(tmp_path, Settings())
    try:
        queues = [f"q{i}" for i in range(queue_count)]
        broker.publish_many([Publication(queues[i % queue_count], envelope(f"m{i}")) for i in range(20_000)])
        # When a worker claims 64
        conn = broker.connection()
        params = {"queues": queues, "limit": 64, "owner": "probe", "hold": 30.0}
        params.update({f"q{i}": q for i, q in enumerate(queues)})
        [[plan]] = conn.execute("EXPLAIN (ANALYZE, FORMAT JSON) " + broker.sql.claim(queue_count), params).fetchall()
        # Then it read about 64 rows per queue from the index, not the 20,000 behind them
        assert _rows_read(plan[0]["Plan"]) <= 64 * queue_count * 2
    finally:
        cleanup()


def test_four_workers_run_each_of_10000_tasks_once(tmp_path: Path) -> None:
    from tests.contract.postgres_factories import drop_schema, unique_schema, with_schema
    from tests.servers import require_postgres

    # Given 10,000 tasks already queued, and four workers started together on them
    server, schema = require_postgres(), unique_schema()
    url = with_schema(server, schema)
    env = base_env(tmp_path, url, "none", TASKQ_RECOVERY_TIME="30")
    producer = TaskQ("producer", broker=url, backend="none")
    workers = WorkerFactory(tmp_path, env)
    try:
        producer.send_many("example_tasks.stamp", [((f"t{i}",), {}) for i in range(10_000)])
        for _ in range(4):
            workers.start("-c", "1", ready=False)
        # When they drain the queue
        wait_until(lambda: len(workers.marks.lines()) >= 10_000, 120, "10,000 tasks to run")
        wait_until(lambda: producer.broker.queue_length("celery") == 0, 20, "the last acks")
        # Then every task ran exactly once, and all four workers took a share
        runs = workers.marks.count("done")
        assert len(runs) == 10_000 and set(runs.values()) == {1}
        assert len({pid for _, _, pid in workers.marks.lines()}) == 4
    finally:
        workers.close()
        producer.close()
        drop_schema(server, schema)


def test_worker_and_producer_ride_out_a_server_restart(tmp_path: Path) -> None:
    # Given a worker and a producer on a server of their own, both with live connections
    server = ThrowawayPostgres()
    url = server.url + "?schema=restart"
    env = base_env(tmp_path, url, f"sqlite:///{tmp_path}/results.db")
    workers = WorkerFactory(tmp_path, env)
    producer = TaskQ("producer", broker=url, backend=f"sqlite:///{tmp_path}/results.db")
    try:
        workers.start("-c", "1")
        assert producer.send_task("example_tasks.add", (1, 1)).get(timeout=20) == 2
        delayed = producer.send_task("example_tasks.stamp", ("after-restart",), countdown=3)
        # When the server restarts (every connection is cut)
        server.restart()
        # Then the producer's next send succeeds on a new connection, without an error
        assert producer.send_task("example_tasks.add", (2, 2)).get(timeout=30) == 4
        # And the delayed task, stored before the restart, still runs once
        assert isinstance(delayed.get(timeout=30), float)
        assert workers.marks.count("done")["after-restart"] == 1
        assert workers.workers[0].proc.poll() is None
    finally:
        producer.close()
        workers.close()
        server.stop()


def test_a_server_crash_mid_drain_loses_no_task(tmp_path: Path) -> None:
    # Given 3,000 tasks sent (each committed to disk) and a worker draining them; its claims
    # and acks commit without waiting for the WAL flush
    server = ThrowawayPostgres()
    url = server.url + "?schema=crash"
    env = base_env(tmp_path, url, "none")
    workers = WorkerFactory(tmp_path, env)
    producer = TaskQ("producer", broker=url, backend="none")
    try:
        producer.send_many("example_tasks.stamp", [((f"c{i}",), {}) for i in range(3000)])
        workers.start("-c", "2")
        wait_until(lambda: len(workers.marks.lines()) >= 500, 60, "the drain to be under way")
        # When the server crashes (SIGKILL: what was not yet written is gone) and comes back
        server.crash()
        server.start()
        # Then every task still runs (some twice: acks lost in the crash), and none is left
        wait_until(lambda: len(workers.marks.count("done")) == 3000, 120, "every task to run")
        wait_until(lambda: producer.broker.queue_length("celery") == 0, 30, "the queue to empty")
        assert workers.workers[0].proc.poll() is None
    finally:
        producer.close()
        workers.close()
        server.stop()
