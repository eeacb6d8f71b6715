"""A burst of task events on Redis and RabbitMQ: every one arrives, in clock order, with
Celery's fields, whether the sender grouped it (task.multi) or not."""

from __future__ import annotations

import uuid

import pytest

from taskq.config import Settings
from taskq.events.dispatcher import EventDispatcher
from taskq.events.kombu_bus import KombuSubscription
from tests.servers import require_rabbitmq, require_redis


@pytest.mark.parametrize("server", ["redis", "rabbitmq"])
def test_a_burst_of_task_events_arrives_whole_and_in_order(server: str) -> None:
    url = require_redis() if server == "redis" else require_rabbitmq()
    conf = Settings(broker_url=url)
    host = f"burst-{uuid.uuid4().hex[:8]}@test"
    subscription = KombuSubscription(conf)
    list(subscription.read(0.3))  # Redis subscribes on the first read: events before it are not seen
    dispatcher = EventDispatcher(conf, host)
    try:
        for n in range(600):
            dispatcher.send("task-succeeded", uuid=f"t{n}", result="None", runtime=0.001)
            if n == 300:
                dispatcher.send("worker-heartbeat", freq=2.0)
        assert dispatcher.flush(30)
        got: list[dict[str, object]] = []
        for _ in range(100):
            got += [e for e in subscription.read(0.5) if e.get("hostname") == host]
            if len(got) >= 601:
                break
    finally:
        dispatcher.close()
        subscription.close()
    assert [e["clock"] for e in got] == list(range(1, 602))
    tasks = [e for e in got if e["type"] == "task-succeeded"]
    assert [e["uuid"] for e in tasks] == [f"t{n}" for n in range(600)]
    assert all({"timestamp", "utcoffset", "pid", "result", "runtime"} <= e.keys() for e in tasks)
    assert [e["type"] for e in got].count("worker-heartbeat") == 1
