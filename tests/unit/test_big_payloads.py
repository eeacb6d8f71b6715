"""Big arguments and results (issue 22 point 4): a 1 MB argument and a 1 MB result arrive
exactly, on Redis and on SQLite; the Redis broker writes a big message to the socket in
parts (connection.Parts) and stores the same entry it would have joined."""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest
import redis

from taskq import TaskQ
from taskq.brokers.base import Delivery
from taskq.brokers.redis import RedisBroker, entry
from taskq.brokers.redis.connection import Parts, RedisConnector
from taskq.errors import BrokerError
from taskq.message import build, new_task_id
from taskq.serialization import get_serializer
from tests.contract.redis_factories import delete_prefixed, unique_prefix
from tests.servers import require_redis
from tests.unit.conftest import inline_worker

MB = 1024 * 1024


def payload() -> str:
    """1 MB of text with what JSON must escape inside, and more than ASCII."""
    return os.urandom(MB // 2).hex()[: MB - 16] + 'é"\\\n\x00\u2028𝄞end'


def plain() -> str:
    """1 MB that needs no escaping (bigjson's copy path)."""
    return os.urandom(MB // 2).hex()


@pytest.fixture
def redis_app() -> Iterator[TaskQ]:
    url = require_redis()
    prefix = unique_prefix()
    options = {"global_keyprefix": prefix}
    app = TaskQ(
        "big", broker=url, backend=url, broker_transport_options=options,
        result_backend_transport_options=options, recovery_time=5.0,
    )  # fmt: skip
    try:
        yield app
    finally:
        delete_prefixed(url, prefix)


@pytest.fixture
def sqlite_app(tmp_path: Path) -> TaskQ:
    return TaskQ("big", broker=f"sqlite:///{tmp_path}/broker.db", backend=f"sqlite:///{tmp_path}/results.db")


def round_trip(app: TaskQ, values: list[str]) -> None:
    @app.task(name="t.echo")
    def echo(data: str, suffix: str = "") -> str:
        return data + suffix

    results = [echo.delay(value, suffix=value[:7]) for value in values]
    with inline_worker(app, prefetch=4):
        for value, result in zip(values, results, strict=True):
            assert result.get(timeout=30) == value + value[:7]


@pytest.mark.parametrize("make", [plain, payload])
def test_a_1mb_argument_and_its_result_round_trip_exactly_on_redis(redis_app: TaskQ, make: object) -> None:
    round_trip(redis_app, [make() for _ in range(3)])  # type: ignore[operator]


@pytest.mark.parametrize("make", [plain, payload])
def test_a_1mb_argument_and_its_result_round_trip_exactly_on_sqlite(sqlite_app: TaskQ, make: object) -> None:
    round_trip(sqlite_app, [make() for _ in range(3)])  # type: ignore[operator]


def test_a_big_message_is_stored_as_the_entry_it_would_have_been_joined_into(redis_app: TaskQ) -> None:
    envelope = build("t.echo", (plain(),), {}, task_id=new_task_id(), serializer=get_serializer("json"))
    redis_app.broker.publish("big", envelope)
    client = redis.Redis.from_url(require_redis())
    key = redis_app.broker.lane_key("big", 0)  # type: ignore[attr-defined]
    [(_, fields)] = client.xrange(key)
    assert fields[b"m"] == entry.encode(envelope)
    assert entry.decode(fields[b"m"]).body == envelope.body
    client.close()


def test_parts_are_framed_as_one_argument_and_fall_back_joined() -> None:
    url = require_redis()
    key = f"parts-{uuid.uuid4().hex}"
    conn = RedisConnector(url)
    body = os.urandom(200_000)
    try:
        command = Parts(("SET", key), (b"head:", memoryview(body)[1:]))
        assert command.joined() == ("SET", key, b"head:" + body[1:])
        assert conn.direct_many(BrokerError, "test", [command, ("GET", key)])[1] == b"head:" + body[1:]

        # The pooled client (a dropped connection's fallback, cluster routing) gets it joined
        def dropped(*args: object, **kwargs: object) -> None:
            raise redis.ConnectionError("dropped")

        conn._local.conn.send_packed_command = dropped
        # True: the pooled client's reply (the direct connection's would be b"OK")
        assert conn.direct_many(BrokerError, "test", [Parts(("SET", key), (b"x", body))]) == [True]
        assert conn.client.get(key) == b"x" + body
    finally:
        conn.client.delete(key)
        conn.close()


def test_prefetch_of_1mb_messages_on_redis_stays_under_the_byte_cap(redis_app: TaskQ) -> None:
    # Given a 3 MB cap, prefetch 4 and 1 MB arguments on Redis
    redis_app.conf.worker_prefetch_bytes = 3 * MB
    redis_app.conf.worker_prefetch_max = 64
    ran: list[int] = []

    @redis_app.task(name="t.size", ignore_result=True)
    def size(data: str) -> None:
        ran.append(len(data))

    size.delay_many([(plain(),)] * 20)
    got: list[int] = []
    broker = redis_app.broker
    assert isinstance(broker, RedisBroker)
    fetch, fetch_acking = broker.fetch, broker.fetch_acking

    def recorded(batch: list[Delivery]) -> list[Delivery]:
        if batch:
            got.append(len(batch))
        return batch

    def recording(queues: Sequence[str], max_count: int, timeout: float) -> list[Delivery]:
        return recorded(fetch(queues, max_count, timeout))

    def recording_acking(acks: list[Delivery], queues: Sequence[str], max_count: int, timeout: float) -> list[Delivery]:
        return recorded(fetch_acking(acks, queues, max_count, timeout))  # a fetch that carries the last batch's acks

    broker.fetch, broker.fetch_acking = recording, recording_acking  # type: ignore[method-assign]
    with inline_worker(redis_app, prefetch=4):
        deadline = time.monotonic() + 60
        while len(ran) < 20 and time.monotonic() < deadline:
            time.sleep(0.01)
    assert ran == [MB] * 20
    # Then after the first fetch (sizes not known yet) no fetch holds more than 3 MB
    assert got[1:] and max(got[1:]) <= 3
