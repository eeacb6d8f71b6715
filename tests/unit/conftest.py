from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import pytest

from taskq import TaskQ
from taskq.worker.consumer import Consumer


@pytest.fixture
def app() -> TaskQ:
    """An app on a private in-memory broker and backend."""
    name = uuid.uuid4().hex
    return TaskQ("tests", broker=f"memory://{name}", backend=f"memory://{name}", recovery_time=1.0)


@contextmanager
def inline_worker(app: TaskQ, queues: tuple[str, ...] = ("celery",), prefetch: int = 1) -> Iterator[Consumer]:
    """A real consumer loop in a thread of this process, stopped warm at the end."""
    consumer = Consumer(app, queues, prefetch)
    thread = threading.Thread(target=consumer.run, daemon=True)
    thread.start()
    try:
        yield consumer
    finally:
        consumer.warm_stop()
        thread.join(timeout=10)
        assert not thread.is_alive(), "consumer did not stop"
