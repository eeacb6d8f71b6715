"""RabbitMQ-specific promises of the broker, against the real server (each test its own queues)."""

from __future__ import annotations

import logging
import os
import signal
import threading
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pika
import pytest

from taskq.brokers.base import Delivery, Publication
from taskq.brokers.rabbitmq import RabbitMQBroker, connection_parameters
from taskq.config import Settings
from taskq.envelope import Envelope
from taskq.errors import ConfigurationError, PublishError
from tests.contract.rabbitmq_factories import delete_queues, list_queues
from tests.integration.workers import wait_until
from tests.servers import require_rabbitmq

pytestmark = pytest.mark.rabbitmq


def envelope(task_id: str | None = None, priority: int = 0) -> Envelope:
    task_id = task_id or uuid.uuid4().hex
    return Envelope({"task": "t.noop", "id": task_id, "lang": "py"}, b"[[], {}, {}]", properties={"priority": priority})


@pytest.fixture
def queue() -> Iterator[str]:
    name = f"rq-{uuid.uuid4().hex[:10]}"
    yield name
    delete_queues(require_rabbitmq(), [name])


def make_broker(url: str | None = None, **settings: object) -> RabbitMQBroker:
    s = Settings()
    s.recovery_time = 60.0
    for key, value in settings.items():
        setattr(s, key, value)
    return RabbitMQBroker(url or require_rabbitmq(), s)


def test_a_publish_the_broker_refuses_raises(queue: str) -> None:
    # Given a queue that holds one message and refuses more (a nack, not a silent drop)
    broker = make_broker(queue_arguments={queue: {"x-max-length": 1, "x-overflow": "reject-publish"}})
    try:
        broker.publish(queue, envelope("first"))
        # When more is published, Then the nack surfaces as PublishError, singly and in bulk
        with pytest.raises(PublishError, match="refused"):
            broker.publish(queue, envelope("second"))
        with pytest.raises(PublishError, match="refused 3 of 3"):
            broker.publish_many([Publication(queue, envelope()) for _ in range(3)])
        assert broker.queue_length(queue) == 1
    finally:
        broker.close()


def test_a_refused_publish_is_sent_once_more_on_a_new_channel(queue: str) -> None:
    # RabbitMQ 3.10 nacked every publish on a channel that had published to a quorum queue
    # whose leader's node was killed (test_rabbitmq_cluster.py); a new channel was fine.
    broker = make_broker(queue_arguments={queue: {"x-max-length": 1, "x-overflow": "reject-publish"}})
    try:
        broker.publish(queue, envelope("first"))
        link = broker._link
        assert link is not None
        channel = link._slots["publisher"].channel
        with pytest.raises(PublishError, match="refused 1 of 1"):  # nacked on both channels
            broker.publish(queue, envelope("second"))
        assert broker._link is link and link._slots["publisher"].channel is not channel
        assert broker.purge(queue) == 1
        broker.publish(queue, envelope("third"))  # the new channel's confirms are counted right
        assert broker.queue_length(queue) == 1
    finally:
        broker.close()


def test_a_header_amqp_cannot_carry_raises_at_once(queue: str) -> None:
    broker = make_broker()
    try:
        started = time.monotonic()
        with pytest.raises(PublishError, match="cannot be encoded"):
            broker.publish(queue, Envelope({"id": "x", "bad": object()}, b""))
        assert time.monotonic() - started < 2  # not retried like a lost connection
        broker.publish(queue, envelope("fine"))  # the connection is still good
        assert broker.queue_length(queue) == 1
    finally:
        broker.close()


def test_unreachable_server_raises_publish_error_after_retrying() -> None:
    broker = make_broker("amqp://guest:guest@127.0.0.1:1//", broker_transport_options={"publish_retry_timeout": 0.5})
    started = time.monotonic()
    with pytest.raises(PublishError, match="did not confirm"):
        broker.publish("never", envelope())
    assert time.monotonic() - started < 10


def test_a_queue_declared_without_arguments_is_shared(queue: str, caplog: pytest.LogCaptureFixture) -> None:
    # Given a queue declared as Celery declares `celery`: durable, no x-max-priority
    with pika.BlockingConnection(connection_parameters(require_rabbitmq())) as connection:
        connection.channel().queue_declare(queue, durable=True)
    broker = make_broker()
    try:
        # When taskq publishes and fetches there, Then no PRECONDITION_FAILED, and one line says the cost
        with caplog.at_level(logging.WARNING, logger="taskq.brokers.rabbitmq"):
            broker.publish(queue, envelope("shared", priority=5))
            [got] = broker.fetch([queue], 1, timeout=5)
        assert got.envelope is not None and got.envelope.id == "shared"
        broker.ack([got])
        lines = [r.getMessage() for r in caplog.records if queue in r.getMessage()]
        assert len(lines) == 1 and "no priorities" in lines[0]
    finally:
        broker.close()


def test_queue_arguments_declare_as_celery_does(queue: str) -> None:
    broker = make_broker(queue_arguments={queue: {}})
    try:
        broker.publish(queue, envelope())
        # A plain declare with no arguments (what Celery does) is now equivalent: no error
        with pika.BlockingConnection(connection_parameters(require_rabbitmq())) as connection:
            assert connection.channel().queue_declare(queue, durable=True).method.message_count == 1
    finally:
        broker.close()


def test_quorum_queue_counts_deliveries_and_refuses_priorities(queue: str) -> None:
    broker = make_broker(queue_arguments={queue: {"x-queue-type": "quorum"}}, max_deliveries=3, recovery_time=0.5)
    try:
        with pytest.raises(ConfigurationError, match="quorum queue"):
            broker.publish(queue, envelope(priority=5))
        broker.publish(queue, envelope("q1"))
        [first] = broker.fetch([queue], 1, timeout=5)
        assert first.redeliveries == 0
        # Its claim expires unextended: RabbitMQ counts the return in x-delivery-count
        [again] = broker.fetch([queue], 1, timeout=5)
        assert again.envelope is not None and again.envelope.id == "q1" and again.redeliveries == 1
        assert "x-delivery-count" not in again.envelope.headers
        broker.ack([again])
        arguments = next(line for line in _queue_arguments("/") if line.startswith(queue + "\t"))
        assert "x-delivery-limit" in arguments and "5" in arguments  # max_deliveries + 2: a backstop
        # Its dead-letter queue is replicated as it is: a classic one lives on one node, and
        # while that node was down its declare failed, and every publish with it
        types = dict(line.split("\t") for line in _queue_columns("/", "type"))
        assert types[queue] == types[queue + ".dead"] == "quorum"
    finally:
        broker.close()


def test_heartbeats_go_on_while_a_task_holds_a_delivery(queue: str) -> None:
    # Given a 2-second heartbeat: the server drops a connection silent for ~4-6 s
    broker = make_broker(require_rabbitmq().rstrip("/") + "//?heartbeat=2")
    try:
        broker.publish(queue, envelope("long"))
        [held] = broker.fetch([queue], 1, timeout=5)
        link = broker._link
        # When this thread runs a "task" for 10 s without touching the broker
        time.sleep(10)
        # Then the connection is the same one, and the ack lands: the message is gone for good
        assert broker._link is link and link is not None and link.alive
        broker.ack([held])
        assert broker.queue_length(queue) == 0
    finally:
        broker.close()
    other = make_broker()
    try:
        assert other.fetch([queue], 1, timeout=0.5) == []
    finally:
        other.close()


def test_acks_may_come_from_other_threads(queue: str) -> None:
    broker = make_broker()
    try:
        broker.publish_many([Publication(queue, envelope(f"m{i}")) for i in range(20)])
        got: list[Delivery] = []
        while len(got) < 20:
            got += broker.fetch([queue], 20 - len(got), timeout=5)
        threads = [threading.Thread(target=broker.ack, args=([d],)) for d in got]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert broker.queue_length(queue) == 0
    finally:
        broker.close()


def test_a_batch_of_acks_below_every_held_claim_is_one_multiple_ack(
    queue: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    broker = make_broker()
    acks: list[tuple[int, bool]] = []
    basic_ack = pika.channel.Channel.basic_ack

    def counted(channel: pika.channel.Channel, delivery_tag: int = 0, multiple: bool = False) -> None:
        acks.append((delivery_tag, multiple))
        basic_ack(channel, delivery_tag, multiple)

    monkeypatch.setattr(pika.channel.Channel, "basic_ack", counted)
    try:
        broker.publish_many([Publication(queue, envelope(f"m{i}")) for i in range(12)])
        got: list[Delivery] = []
        while len(got) < 12:
            got += broker.fetch([queue], 12 - len(got), timeout=5)
        tags = [d.tag.delivery_tag for d in got]  # type: ignore[attr-defined]
        broker.ack(got[4:8])  # the first four are still held: these go one by one
        wait_until(lambda: len(acks) == 4, 5, "four single acks")
        assert acks == [(tag, False) for tag in tags[4:8]]
        broker.ack(got[:4])  # now everything below the held tail: one frame
        wait_until(lambda: len(acks) == 5, 5, "one multiple ack")
        assert acks[4] == (tags[3], True)
        assert list_queues("/")[queue]["unacked"] == 4  # the held tail was not swept along
        broker.ack(got[8:])
        wait_until(lambda: list_queues("/")[queue]["unacked"] == 0, 5, "all acked")
        assert broker.queue_length(queue) == 0
    finally:
        broker.close()


def test_a_consumer_started_while_its_channel_was_lost_holds_nothing_back(
    queue: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    broker = make_broker()
    try:
        broker.publish_many([Publication(queue, envelope(f"m{i}")) for i in range(3)])
        link, claims = broker._session()
        consume, started = link.consume, []

        def lost_on_the_way(name: str, prefetch: int, tag: str, deliver: Any) -> None:
            started.append(tag)
            if len(started) == 1:  # the channel is lost (its consumers forgotten) meanwhile
                with claims._cond:
                    claims._by_tag.clear()
            consume(name, prefetch, tag, deliver)

        monkeypatch.setattr(link, "consume", lost_on_the_way)
        got: list[Delivery] = []
        deadline = time.monotonic() + 10
        while len(got) < 3 and time.monotonic() < deadline:
            got += broker.fetch([queue], 3 - len(got), timeout=1)
        # The unknown consumer's deliveries went back and it was cancelled; a fresh one got them.
        assert sorted(d.envelope.id for d in got if d.envelope) == ["m0", "m1", "m2"]
        assert len(started) >= 2
        broker.ack(got)
        wait_until(lambda: broker.queue_length(queue) == 0, 5, "all acked")
    finally:
        broker.close()


def test_a_two_hour_eta_waits_in_a_delay_queue_that_no_consumer_holds(queue: str) -> None:
    broker = make_broker()
    try:
        broker.publish(queue, envelope("later"), eta=time.time() + 7200)
        assert broker.fetch([queue], 1, timeout=0.5) == []  # a consumer is on the queue now
        listing = list_queues("/")
        delay = {name: q for name, q in listing.items() if name.startswith(queue + ".taskq-delay.")}
        assert [(q["ready"], q["unacked"], q["consumers"]) for q in delay.values()] == [(1, 0, 0)]
        assert listing[queue] == {"ready": 0, "unacked": 0, "consumers": 1}
        assert broker.queue_length(queue) == 1
        assert broker.purge(queue) == 1
    finally:
        broker.close()


def _queue_arguments(vhost: str) -> list[str]:
    return _queue_columns(vhost, "arguments")


def _queue_columns(vhost: str, column: str) -> list[str]:
    """``name<TAB>column`` per queue of the vhost."""
    from tests.contract.rabbitmq_factories import rabbitmqctl

    return rabbitmqctl("list_queues", "-p", vhost, "--no-table-headers", "name", column).splitlines()


def test_close_hands_back_prefetched_messages_unmarked(queue: str) -> None:
    # Given a broker that fetched one message while RabbitMQ pushed it the others (its prefetch)
    first = make_broker()
    first.publish_many([Publication(queue, envelope(f"m{i}")) for i in range(3)])
    [taken] = first.fetch([queue], 1, timeout=5)
    first.requeue([taken])  # the worker's warm-shutdown return of what it took
    # (wait until RabbitMQ pushed everything here: a message still on the wire while the
    # consumer is cancelled is rejected by pika, and so comes back marked redelivered)
    wait_until(lambda: list_queues("/")[queue]["ready"] == 0, 10, "all three pushed to the consumer")
    # When it closes
    first.close()
    # Then everything is back, none of it marked as a redelivery (so none counts toward max_deliveries)
    second = make_broker()
    try:
        got: list[Delivery] = []
        while len(got) < 3:
            batch = second.fetch([queue], 3, timeout=5)
            assert batch, f"only {len(got)} came back"
            got += batch
        assert sorted(d.envelope.id for d in got if d.envelope) == [f"m{i}" for i in range(3)]
        assert [d.redeliveries for d in got] == [0] * 3
        second.ack(got)
    finally:
        second.close()


def test_a_process_killed_as_requeue_returns_leaves_one_copy_of_each_message(queue: str) -> None:
    """requeue() publishes copies and acks the originals; it returns once RabbitMQ has the
    acks, not when they wait for the I/O thread. A prefork child killed at its hard time limit
    just after handing messages back must not leave the originals to come back beside their
    copies (each task would run twice)."""
    ids = [f"m{i}" for i in range(5)]
    pid = os.fork()
    if pid == 0:
        try:
            broker = make_broker()
            broker.publish_many([Publication(queue, envelope(task_id)) for task_id in ids])
            got: list[Delivery] = []
            while len(got) < len(ids):
                got += broker.fetch([queue], len(ids), timeout=5)
            broker.requeue(got)
            os.kill(os.getpid(), signal.SIGKILL)  # as the supervisor's kill, the moment it returns
        finally:
            os._exit(1)
    _, status = os.waitpid(pid, 0)
    assert os.WIFSIGNALED(status), "the child failed before its kill"
    # Once RabbitMQ has seen the connection go (and returned whatever it left unacked)
    wait_until(lambda: list_queues("/")[queue]["unacked"] == 0 == list_queues("/")[queue]["consumers"], 20, "close")
    # Then each message is in the queue once (the copies pushed back to the dead consumer come
    # back marked redelivered: that is RabbitMQ's doing, and runs nothing twice)
    broker = make_broker()
    try:
        got = []
        while batch := broker.fetch([queue], 10, timeout=1):
            got += batch
        assert sorted(d.envelope.id for d in got if d.envelope) == ids
    finally:
        broker.close()
