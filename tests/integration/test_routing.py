"""Routing end to end: a topic and a fanout exchange really deliver to the queues bound to
them (RabbitMQ), and the same routes reach the same queues on Redis and SQLite, where taskq
resolves the exchanges through task_queues; workers on those queues run the tasks."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from routing_tasks import QUEUES, ROUTING

from taskq import TaskQ, TaskQError
from tests.integration.conftest import activate
from tests.integration.workers import WorkerFactory, wait_until

BROKERS = ["rabbitmq", "redis", "sqlite"]


@pytest.fixture(params=BROKERS)
def broker_env(
    request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[dict[str, str]]:
    yield from activate(request.param, tmp_path, monkeypatch)


@pytest.fixture
def routed(broker_env: dict[str, str]) -> Iterator[TaskQ]:
    app = TaskQ("producer", broker=broker_env["TASKQ_BROKER_URL"], **ROUTING)
    app.conf.broker_transport_options = {**app.conf.broker_transport_options, "publish_retry_timeout": 1.0}
    yield app
    app.close()


def test_exchanges_deliver_to_the_bound_queues(workers: WorkerFactory, routed: TaskQ) -> None:
    # Given a worker on every queue of task_queues
    workers.start("-A", "routing_tasks:app", "-Q", QUEUES, "-c", "2", "-P", "threads")
    key = uuid.uuid4().hex[:8]
    # When each task is sent by name, routed only by task_routes (one also delayed)
    routed.send_task("routing_tasks.audit", [key])
    routed.send_task("routing_tasks.audit", [key + "-later"], countdown=1)
    routed.send_task("routing_tasks.billing", [key])
    routed.send_task("routing_tasks.announce", [key])
    routed.send_task("routing_tasks.report_daily", [key])
    # The call's queue wins over the route; a queue of a topic exchange is published to as Celery
    # does: to its exchange with its binding key ("audit.*"), which "#" matches as well.
    routed.send_task("routing_tasks.report_daily", [key + "-own"], queue="rt.audit")
    routed.send_task("routing_tasks.flaky", [key])  # a retry goes back to its own queue only
    # Then each ran once in every queue its exchange binds for its key, and nowhere else
    expected = {
        f"audit:{key}@rt.audit", f"audit:{key}@rt.all-events",
        f"audit:{key}-later@rt.audit", f"audit:{key}-later@rt.all-events",
        f"billing:{key}@rt.all-events",
        f"announce:{key}@rt.fan-a", f"announce:{key}@rt.fan-b",
        f"report_daily:{key}@rt.reports",
        f"report_daily:{key}-own@rt.audit", f"report_daily:{key}-own@rt.all-events",
        f"flaky:{key}@rt.audit", f"flaky:{key}@rt.all-events",
    }
    retried = {f"flaky:{key}@rt.audit", f"flaky:{key}@rt.all-events"}
    wait_until(lambda: expected <= set(workers.marks.count("start")), 45, f"every routed run: {expected}")
    wait_until(lambda: all(workers.marks.count("start")[k] >= 2 for k in retried), 30, "the retries")
    time.sleep(1)  # a wrongly routed retry would have arrived by now
    starts = workers.marks.count("start")
    assert {k for k in starts if key in k} == expected
    assert all(starts[k] == (2 if k in retried else 1) for k in expected), starts


def test_exchanges_are_declared_as_celery_declares_them(routed: TaskQ, broker_env: dict[str, str]) -> None:
    if not broker_env["TASKQ_BROKER_URL"].startswith("amqp"):
        pytest.skip("exchanges exist on RabbitMQ only")
    from kombu import Connection

    routed.send_task("routing_tasks.audit", ["declare"])
    routed.send_task("routing_tasks.announce", ["declare"])
    # kombu re-declares each exchange as Celery does: other properties would close the channel (406)
    with Connection(broker_env["TASKQ_BROKER_URL"]) as conn:
        channel = conn.channel()
        for queue in ROUTING["task_queues"]:
            queue.exchange(channel).declare()
            queue.exchange(channel).declare(passive=True)
        channel.close()


def test_a_route_no_queue_is_bound_for_is_an_error(routed: TaskQ) -> None:
    # RabbitMQ returns the unroutable message (mandatory publish); the others see no binding
    with pytest.raises(TaskQError, match=r"d\.none"):
        routed.send_task("routing_tasks.lost", ["x"])
