"""Copies of one signed message, spread over two real worker processes, run once: the replay
memory lives on the server both workers share (Redis; for RabbitMQ, the Redis result backend)."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from taskq import TaskQ
from tests.contract.rabbitmq_factories import fresh_vhost
from tests.contract.redis_factories import delete_prefixed
from tests.integration.workers import WorkerFactory, base_env, wait_until
from tests.servers import require_rabbitmq, require_redis

KEY = "integration-signing-key"


@pytest.fixture(params=["redis", "rabbitmq"])
def env(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[dict[str, str]]:
    redis_url = require_redis()
    prefix = f"taskq-it-{uuid.uuid4().hex[:12]}:"
    keys = json.dumps({"global_keyprefix": prefix})
    extra = {"TASKQ_SIGNING_KEY": KEY, "TASKQ_RESULT_BACKEND_TRANSPORT_OPTIONS": keys}
    try:
        if request.param == "redis":
            yield base_env(tmp_path, redis_url, redis_url, TASKQ_BROKER_TRANSPORT_OPTIONS=keys, **extra)
        else:
            with fresh_vhost(require_rabbitmq()) as amqp_url:
                yield base_env(tmp_path, amqp_url, redis_url, **extra)
    finally:
        delete_prefixed(redis_url, prefix)


def producer_for(env: dict[str, str]) -> TaskQ:
    return TaskQ(
        "producer", broker=env["TASKQ_BROKER_URL"], backend=env["TASKQ_RESULT_BACKEND"], signing_key=KEY,
        broker_transport_options=json.loads(env.get("TASKQ_BROKER_TRANSPORT_OPTIONS", "{}")),
        result_backend_transport_options=json.loads(env["TASKQ_RESULT_BACKEND_TRANSPORT_OPTIONS"]),
    )


def test_copies_of_a_signed_message_run_once_across_two_workers(tmp_path: Path, env: dict[str, str]) -> None:
    workers = WorkerFactory(tmp_path, env)
    producer = producer_for(env)
    try:
        # Given two worker processes, both on the default queue, one also on "other"
        workers.start("-P", "threads", "-c", "2")
        workers.start("-P", "threads", "-c", "2", "-Q", "celery,other")
        # When one signed message is published six times to its queue and once to another
        pub = producer.build_publication("example_tasks.sleep_then", ("once", 0.2), {})
        for _ in range(6):
            producer.broker.publish(pub.queue, pub.envelope)
        producer.broker.publish("other", pub.envelope)
        # Then it runs once; five copies are replays and the moved one a bad signature
        wait_until(lambda: len(producer.broker.dead_letters(limit=100)) >= 6, 30, "six dead letters")
        assert producer.AsyncResult(pub.envelope.id).get(timeout=30) == "once"
        reasons = sorted(d.reason.split(":")[0] for d in producer.broker.dead_letters(limit=100))
        assert reasons == ["bad signature"] + ["replayed"] * 5, reasons
        for worker in workers.workers:
            worker.stop()
        assert workers.marks.count("start")["once"] == 1
    finally:
        producer.close()
        workers.close()
