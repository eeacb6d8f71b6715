"""Producers and consumers on several queues that count, Jepsen-style, what a failover did:
acknowledged (publish returned), lost (acknowledged, never delivered), duplicated
(delivered more than once) and redelivered (delivered again after a claim was recovered)."""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Callable, Sequence

from taskq.brokers import create_broker
from taskq.brokers.base import Broker
from taskq.config import Settings
from taskq.envelope import Envelope
from taskq.errors import BrokerError
from tests.integration.workers import wait_until


def envelope(task_id: str) -> Envelope:
    return Envelope({"task": "t.noop", "id": task_id, "lang": "py"}, b"[[], {}, {}]")


def redis_settings(wait_replicas: int) -> Settings:
    settings = Settings()
    settings.recovery_time = 2.0  # claims lost with a master come back within 2 s
    settings.broker_transport_options = {"wait_replicas": wait_replicas, "wait_timeout": 1.0}
    return settings


class FailoverTraffic:
    def __init__(self, url: str, queues: Sequence[str], settings: Settings, consumers: int = 2) -> None:
        self.queues = list(queues)
        self.producer = create_broker(url, settings)
        self.consumers = [create_broker(url, settings) for _ in range(consumers)]
        self.acknowledged: list[str] = []
        self.acknowledged_at: list[tuple[float, str]] = []  # (monotonic time, queue) of each
        self.unconfirmed = 0  # publish raised: no promise (it may still be delivered)
        self.delivered: Counter[str] = Counter()
        self.redelivered = 0
        self._lock = threading.Lock()
        self.stop_producing = threading.Event()
        self.stop_consuming = threading.Event()
        self.threads = [threading.Thread(target=self._produce)]
        self.threads += [threading.Thread(target=self._consume, args=(b,)) for b in self.consumers]

    def _produce(self) -> None:
        n = 0
        while not self.stop_producing.is_set():
            task_id = f"m{n}"
            queue = self.queues[n % len(self.queues)]
            n += 1
            try:
                self.producer.publish(queue, envelope(task_id))
            except BrokerError:
                self.unconfirmed += 1
                continue
            self.acknowledged.append(task_id)
            self.acknowledged_at.append((time.monotonic(), queue))
            time.sleep(0.002)

    def _consume(self, broker: Broker) -> None:
        while not self.stop_consuming.is_set():
            try:
                batch = broker.fetch(self.queues, 20, timeout=0.3)
            except BrokerError:
                continue
            with self._lock:
                self.delivered.update(d.envelope.id for d in batch if d.envelope)
                self.redelivered += sum(1 for d in batch if d.redeliveries)
            try:
                broker.ack(batch)
            except BrokerError:
                pass  # unacked: the claim is recovered and the message delivered again

    def start(self) -> None:
        for thread in self.threads:
            thread.start()

    def wait_delivered(self, count: int, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while len(self.delivered) < count:
            assert time.monotonic() < deadline, f"only {len(self.delivered)} of {count} delivered"
            time.sleep(0.05)

    def publish_resumed(self, since: float, queue: str) -> float:
        """Seconds from ``since`` (a monotonic time) to the first publish to ``queue``
        acknowledged after it."""
        return next(t for t, q in self.acknowledged_at if t > since and q == queue) - since

    def finish(self, timeout: float) -> dict[str, int]:
        """Stop producing, wait until every acknowledged message was delivered (or the
        deadline), stop, and return the counts."""
        self.stop_producing.set()
        self.threads[0].join(timeout)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and not set(self.acknowledged) <= set(self.delivered):
            time.sleep(0.1)
        self.stop_consuming.set()
        for thread in self.threads:
            thread.join(timeout)
        for broker in [self.producer, *self.consumers]:
            broker.close()
        acknowledged = set(self.acknowledged)
        return {
            "acknowledged": len(acknowledged),
            "unconfirmed": self.unconfirmed,
            "lost": len(acknowledged - set(self.delivered)),
            "duplicated": sum(1 for n in self.delivered.values() if n > 1),
            "redelivered": self.redelivered,
        }

    def through(
        self, fault: Callable[[], None], before: int = 200, after: int = 100, timeout: float = 30
    ) -> dict[str, int]:
        """Run the traffic through ``fault``: start; once ``before`` messages were delivered,
        call ``fault`` (it returns when the servers can serve again); wait for ``after`` more
        acknowledged publishes; finish. The counts, with ``outage_ms``: from the fault to the
        first publish to the first queue acknowledged after it."""
        try:
            self.start()
            self.wait_delivered(before, timeout)
            began = time.monotonic()
            fault()
            published = len(self.acknowledged)
            wait_until(lambda: len(self.acknowledged) > published + after, timeout, "publishing after the fault")
            counts = self.finish(timeout)
        finally:
            self.abort()
        counts["outage_ms"] = int(self.publish_resumed(began, self.queues[0]) * 1000)
        return counts

    def abort(self) -> None:
        self.stop_producing.set()
        self.stop_consuming.set()
