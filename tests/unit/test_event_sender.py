"""The background event sender and Celery-style grouping of task-* events."""

from __future__ import annotations

import logging
import threading
from typing import Any

import pytest

from taskq.events.event import LamportClock, make_event
from taskq.events.kombu_bus import GROUP_MAX, grouped
from taskq.events.sender import BackgroundSender


class SlowBus:
    """Takes events only once ``open`` is set, so a test can fill the sender's queue."""

    def __init__(self) -> None:
        self.open = threading.Event()
        self.batches: list[list[dict[str, Any]]] = []

    def publish(self, event: dict[str, Any]) -> None:
        self.publish_many([event])

    def publish_many(self, events: list[dict[str, Any]]) -> None:
        assert self.open.wait(10)
        self.batches.append(list(events))

    def subscribe(self) -> Any:
        raise NotImplementedError

    def close(self) -> None:
        pass


def test_a_full_queue_drops_with_a_count_and_flush_sends_the_rest_in_order(caplog: pytest.LogCaptureFixture) -> None:
    bus = SlowBus()
    sender = BackgroundSender(lambda: bus, limit=3)
    try:
        with caplog.at_level(logging.WARNING, "taskq.events"):
            for n in range(20):
                sender.put({"n": n})  # never blocks, whatever the bus does
        assert not sender.flush(0.2)  # the bus still holds the first batch
        bus.open.set()
        assert sender.flush(10)
        sent = [e["n"] for batch in bus.batches for e in batch]
        assert sent == sorted(sent) and sent[0] == 0
        assert sender.dropped == 20 - len(sent) > 0
        assert len([r for r in caplog.records if "dropped" in r.getMessage()]) == 1  # one line, not one per event
    finally:
        bus.open.set()
        sender.close(5)


def test_close_sends_what_is_queued() -> None:
    bus = SlowBus()
    bus.open.set()
    sender = BackgroundSender(lambda: bus)
    for n in range(50):
        sender.put({"n": n})
    sender.close(10)
    assert [e["n"] for batch in bus.batches for e in batch] == list(range(50))


def test_task_events_go_in_groups_as_celery_s_worker_sends_them() -> None:
    clock = LamportClock()
    events = [make_event("task-received", "a@h", clock, uuid=str(n)) for n in range(GROUP_MAX + 5)]
    events.insert(3, make_event("worker-heartbeat", "a@h", clock, freq=2.0))
    events.append(make_event("task-started", "b@h", clock, uuid="b"))
    messages = list(grouped(events))
    assert [(type(body).__name__, key, host) for body, key, host in messages] == [
        ("list", "task.multi", "a@h"), ("dict", "worker.heartbeat", "a@h"), ("list", "task.multi", "a@h"),
        ("list", "task.multi", "a@h"), ("dict", "task.started", "b@h"),
    ]
    assert all(len(body) <= GROUP_MAX for body, _, _ in messages if isinstance(body, list))
    flat = [e for body, _, _ in messages for e in (body if isinstance(body, list) else [body])]
    assert flat == events  # every event once, in order, unchanged
