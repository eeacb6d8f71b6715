"""Celery-format events: what a worker does, published for monitors (``taskq events``,
Celery's ``app.events.Receiver``, Flower) and read back by ``app.events``.

* event.py: the event dict (Celery's standard fields) and the Lamport clock;
* bus.py: the publish/subscribe seam and its factory by broker URL;
* kombu_bus.py (amqp://, redis://, kombu+...): the ``celeryev`` exchange, as Celery;
* sqlite_bus.py: a bounded table polled by subscribers;
* receiver.py: ``app.events``, a receiver with Celery's ``capture``/``itercapture``;
* task_events.py: the worker's task-* events, as receivers of taskq.signals.
"""

from __future__ import annotations

from taskq.events.event import LamportClock, make_event
from taskq.events.receiver import EventReceiver, Events

__all__ = ["EventReceiver", "Events", "LamportClock", "make_event"]
