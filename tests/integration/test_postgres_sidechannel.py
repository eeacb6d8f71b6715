"""The PostgreSQL side channels on the real server: the event bus and the remote-control
mailbox round trips, woken by NOTIFY, in a schema of their own per test."""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest

from taskq.brokers.postgres.connection import PgConnections
from taskq.brokers.postgres.listen import NotifiedReader
from taskq.control.postgres_mailbox import PostgresMailbox
from taskq.errors import BrokerError
from taskq.events import table_rows
from taskq.events.postgres_bus import PostgresEventBus
from tests.contract.postgres_factories import drop_schema, unique_schema, with_schema
from tests.servers import require_postgres

SAFETY = 30.0  # long: every wake-up below must come from a NOTIFY


@pytest.fixture
def url() -> Iterator[str]:
    server, schema = require_postgres(), unique_schema()
    yield with_schema(server, schema)
    drop_schema(server, schema)


def later(seconds: float, action: Any) -> threading.Thread:
    thread = threading.Thread(target=lambda: (time.sleep(seconds), action()), daemon=True)
    thread.start()
    return thread


def test_events_reach_a_subscriber_at_once_in_order(url: str) -> None:
    bus = PostgresEventBus(url, SAFETY)
    try:
        bus.publish({"type": "before-subscribing"})
        sub = bus.subscribe()
        assert list(sub.read(0.2)) == []  # starts after the newest row
        for i in range(3):
            bus.publish({"type": "e", "n": i})
        assert [e["n"] for e in sub.read(1.0)] == [0, 1, 2]
        # a subscriber asleep on the socket wakes on the publish, long before its safety look
        other = PostgresEventBus(url, SAFETY)
        later(0.3, lambda: other.publish({"type": "late"}))
        start = time.monotonic()
        assert [e["type"] for e in sub.read(10.0)] == ["late"]
        assert time.monotonic() - start < 3.0
        other.close()
        sub.close()
    finally:
        bus.close()


def test_an_event_committed_after_a_newer_one_is_still_read(url: str) -> None:
    bus = PostgresEventBus(url, SAFETY)
    try:
        sub = bus.subscribe()
        schema = bus.schema
        with psycopg.connect(bus.db.conninfo) as slow:  # a transaction: its id is taken, not yet visible
            slow.execute(f'INSERT INTO "{schema}".events (body) VALUES (%s)', ('{"type": "slow"}',))
            bus.publish({"type": "fast"})
            assert [e["type"] for e in sub.read(2.0)] == ["fast"]
        # the slow one commits now, with the smaller id
        assert [e["type"] for e in sub.read(5.0)] == ["slow"]
        sub.close()
    finally:
        bus.close()


def test_the_events_table_stays_bounded(url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(table_rows, "KEEP", 5)
    monkeypatch.setattr(table_rows, "TRIM_EVERY", 10)
    bus = PostgresEventBus(url, SAFETY)
    try:
        for i in range(30):
            bus.publish({"type": "e", "n": i})
        with bus.db.connection() as conn:
            count = conn.execute(f'SELECT count(*) FROM "{bus.schema}".events').fetchone()[0]
        assert count <= 5 + 10
    finally:
        bus.close()


def test_publishing_to_a_server_that_is_down_never_raises(caplog: pytest.LogCaptureFixture) -> None:
    from tests.servers import free_port

    bus = PostgresEventBus(f"postgresql://postgres@127.0.0.1:{free_port()}/test?schema=nowhere", SAFETY)
    bus.publish({"type": "lost"})
    assert "An event was dropped" in caplog.text
    bus.close()


def test_an_idle_reader_sends_no_query_until_notified(url: str) -> None:
    bus = PostgresEventBus(url, SAFETY)
    bus.subscribe().close()  # creates the tables
    db = PgConnections(bus.db.conninfo, BrokerError, "test")
    queries: list[float] = []

    def query(conn: Any) -> list[int]:
        queries.append(time.monotonic())
        return []

    reader = NotifiedReader(db, f"taskq.{bus.schema}.events", safety=1.0)
    try:
        deadline = time.monotonic() + 2.5
        while time.monotonic() < deadline:  # as a worker polls: many short reads
            reader.read(query, 0.1)
        # the first look, then one safety look per second: 3 or 4, where polling would be 25
        assert 2 <= len(queries) <= 4, queries
        reader.read(query, 1.0)  # past a safety look: the next is a second away
        before, sent = len(queries), time.monotonic()
        bus.publish({"type": "wake"})
        reader.read(query, 0.5)
        assert len(queries) == before + 1 and queries[-1] - sent < 0.5  # the NOTIFY's look, at once
    finally:
        db.close()
        bus.close()


def test_control_round_trip_broadcast_and_named(url: str, caplog: pytest.LogCaptureFixture) -> None:
    box = PostgresMailbox(url, SAFETY)
    nodes = {name: box.node(name) for name in ("a@host", "b@host")}
    stop = threading.Event()

    def serve(name: str) -> None:
        node = nodes[name]
        while not stop.is_set():
            for request in node.poll(0.2):
                assert not isinstance(request, str)
                if request.for_node(name):
                    node.reply(request, name, {"ok": request.method, "args": request.arguments})

    threads = [threading.Thread(target=serve, args=(n,), daemon=True) for n in nodes]
    for t in threads:
        t.start()
    try:
        start = time.monotonic()
        replies = box.call("ping", {"x": 1}, None, timeout=2.0)
        assert sorted(replies, key=str) == [
            {"a@host": {"ok": "ping", "args": {"x": 1}}}, {"b@host": {"ok": "ping", "args": {"x": 1}}},
        ]
        named = box.call("stats", {}, ["b@host"], timeout=5.0)
        assert named == [{"b@host": {"ok": "stats", "args": {}}}]
        assert time.monotonic() - start < 2.0 + 2.5  # the named call returned on its one reply
        box.cast("shutdown", {}, ["nobody@host"])
        assert box.call("ping", {}, ["nobody@host"], timeout=0.5) == []
        # nodes made here and polled in their threads still hold their names, and say nothing
        assert box.name_in_use("a@host") and box.name_in_use("b@host")
        assert "holds the name" not in caplog.text
    finally:
        stop.set()
        for t in threads:
            t.join(5)
        for node in nodes.values():
            node.close()
        box.close()


def test_a_live_node_holds_its_name_until_it_ends(url: str) -> None:
    box = PostgresMailbox(url, SAFETY)
    try:
        assert not box.name_in_use("n@host")
        node = box.node("n@host")
        assert box.name_in_use("n@host") and not box.name_in_use("other@host")
        node.close()
        assert not box.name_in_use("n@host")
        # a node whose process is killed gives the name back with its connection
        code = (
            "import sys, time; from taskq.control.postgres_mailbox import PostgresMailbox;"
            f"PostgresMailbox({url!r}, 30).node('k@host'); print('up', flush=True); time.sleep(60)"
        )
        proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
        try:
            assert proc.stdout is not None and proc.stdout.readline().strip() == "up"
            assert box.name_in_use("k@host")
        finally:
            proc.kill()
            proc.wait(10)
        deadline = time.monotonic() + 10
        while box.name_in_use("k@host") and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not box.name_in_use("k@host")
    finally:
        box.close()
