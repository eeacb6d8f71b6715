"""A Redis restart (and a crash) under a running producer and consumer loses nothing Redis
acknowledged, and the consumer's fetch loop carries on by itself afterwards."""

from __future__ import annotations

import threading
import time
import uuid
from pathlib import Path

import pytest
import redis

from taskq.brokers.redis import RedisBroker
from taskq.config import Settings
from taskq.envelope import Envelope
from taskq.errors import BrokerError
from tests.contract.redis_factories import ThrowawayRedis

pytestmark = pytest.mark.redis


def envelope(task_id: str) -> Envelope:
    return Envelope({"task": "t.noop", "id": task_id, "lang": "py"}, b"[[], {}, {}]")


class Traffic:
    """A producer thread and a consumer thread on one queue, counting what got through."""

    def __init__(self, url: str) -> None:
        settings = Settings()
        settings.recovery_time = 2.0  # a fetch whose reply died with the server returns soon
        self.producer = RedisBroker(url, settings)
        self.consumer = RedisBroker(url, settings)
        self.queue = f"restart-{uuid.uuid4().hex[:8]}"
        self.published: list[str] = []  # publish returned: Redis has it
        self.consumed: set[str] = set()
        self.stop_producing = threading.Event()
        self.stop = threading.Event()  # consumer: stop once everything published was consumed
        self.producer_thread = threading.Thread(target=self._produce)
        self.consumer_thread = threading.Thread(target=self._consume)

    def _produce(self) -> None:
        n = 0
        while not self.stop_producing.is_set():
            task_id = f"m{n}"
            n += 1
            try:
                self.producer.publish(self.queue, envelope(task_id))
            except BrokerError:
                continue  # not acknowledged to the producer: no promise about it
            self.published.append(task_id)
            time.sleep(0.002)

    def _consume(self) -> None:
        while not self.stop.is_set() or not self.consumed.issuperset(self.published):
            batch = self.consumer.fetch([self.queue], 20, timeout=0.5)
            try:
                self.consumer.ack(batch)
            except BrokerError:
                pass  # unacked: the claim expires and the message comes back
            self.consumed.update(d.envelope.id for d in batch if d.envelope)
            if self.stop.is_set() and not batch and time.monotonic() > self.give_up_at:
                return

    give_up_at = float("inf")

    def start(self) -> None:
        self.producer_thread.start()
        self.consumer_thread.start()

    def wait_until(self, count: int, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while len(self.consumed) < count:
            assert time.monotonic() < deadline, f"only {len(self.consumed)} of {count} consumed"
            time.sleep(0.05)

    def finish(self, timeout: float) -> None:
        # The producer stops first, so its last acknowledged publish is counted before the
        # consumer decides that it has seen everything.
        self.stop_producing.set()
        self.producer_thread.join(timeout)
        assert not self.producer_thread.is_alive()
        self.give_up_at = time.monotonic() + timeout
        self.stop.set()
        self.consumer_thread.join(timeout + 5)
        assert not self.consumer_thread.is_alive()
        self.producer.close()
        self.consumer.close()


@pytest.mark.parametrize(
    ("crash", "outage"), [(False, 0.0), (True, 0.0), (True, 3.0)], ids=["restart", "kill-9", "kill-9-down-3s"]
)
def test_redis_restart_mid_run_loses_nothing_and_fetch_resumes(tmp_path: Path, crash: bool, outage: float) -> None:
    server = ThrowawayRedis(tmp_path)
    server.start()
    traffic = Traffic(server.url)
    try:
        # Given a producer and a consumer that are both busy
        traffic.start()
        traffic.wait_until(100, timeout=20)
        # When Redis goes away under them and comes back (appendfsync always)
        server.stop(kill=crash)
        time.sleep(outage)  # the length of the outage is the scenario, not a wait for a condition
        server.start()
        before = len(traffic.published)
        # Then the consumer takes up new messages by itself...
        deadline = time.monotonic() + 30
        while not any(int(m[1:]) > int(traffic.published[before - 1][1:]) for m in traffic.consumed):
            assert time.monotonic() < deadline, "the consumer did not resume after the restart"
            time.sleep(0.05)
        traffic.finish(timeout=20)
        # ...and every message whose publish returned was delivered.
        missing = set(traffic.published) - traffic.consumed
        assert not missing, f"{len(missing)} acknowledged messages lost, e.g. {sorted(missing)[:5]}"
        assert len(traffic.published) > before  # some were published after the restart too
    finally:
        traffic.stop_producing.set()
        traffic.stop.set()
        server.stop()


def test_result_wait_survives_a_redis_restart(tmp_path: Path) -> None:
    from taskq import states
    from taskq.backends.redis import RedisBackend

    server = ThrowawayRedis(tmp_path)
    server.start()
    backend = RedisBackend(server.url, Settings())
    got: list[dict[str, object]] = []
    try:
        # Given a caller waiting for a result
        waiter = threading.Thread(target=lambda: got.append(backend.wait_for("restart-1", timeout=30)))
        waiter.start()
        probe = redis.Redis.from_url(server.url)
        deadline = time.monotonic() + 10
        while probe.pubsub_numsub("celery-task-meta-restart-1")[0][1] < 1:
            assert time.monotonic() < deadline, "the waiter never subscribed"
            time.sleep(0.02)
        probe.close()
        # When Redis restarts under the wait, and the result is written afterwards
        server.restart(kill=True)
        RedisBackend(server.url, Settings()).store("restart-1", states.SUCCESS, "after")
        # Then the waiter gets it
        waiter.join(timeout=30)
        assert not waiter.is_alive()
        assert got and got[0]["result"] == "after"
    finally:
        backend.close()
        server.stop()


def test_dropped_connections_are_reopened_without_errors(tmp_path: Path) -> None:
    server = ThrowawayRedis(tmp_path)
    server.start()
    settings = Settings()
    broker = RedisBroker(server.url, settings)
    admin = redis.Redis.from_url(server.url)
    try:
        broker.publish("drop", envelope("before"))
        [held] = broker.fetch(["drop"], 1, timeout=2)
        # When Redis drops every client connection (a network blip, a proxy, CLIENT KILL)
        assert admin.client_kill_filter(_type="normal", skipme=True) >= 1
        # Then the next operations reconnect by themselves, claims intact
        broker.extend([held])
        broker.ack([held])
        broker.publish("drop", envelope("after"))
        assert admin.client_kill_filter(_type="normal", skipme=True) >= 1
        [d] = broker.fetch(["drop"], 1, timeout=5)
        assert d.envelope is not None and d.envelope.id == "after"
        broker.ack([d])
        assert broker.queue_length("drop") == 0
    finally:
        broker.close()
        admin.close()
        server.stop()
