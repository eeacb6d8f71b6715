"""The producer's side: before_task_publish/after_task_publish signals and task-sent events.

Called by ``app.send_task``/``send_many`` only when ``watched(app)``: a producer nobody
watches pays one truth test per send."""

from __future__ import annotations

import socket
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from taskq import signals
from taskq.events.dispatcher import EventDispatcher

if TYPE_CHECKING:
    from taskq.app import TaskQ
    from taskq.brokers.base import Publication

_dispatchers: dict[int, EventDispatcher] = {}


def watched(app: TaskQ) -> bool:
    return bool(
        signals.before_task_publish.receivers or signals.after_task_publish.receivers or app.conf.task_send_sent_event
    )


def _body(pub: Publication) -> Any:
    return pub.envelope.body


def before(app: TaskQ, pubs: Sequence[Publication]) -> None:
    if not signals.before_task_publish.receivers:
        return
    for pub in pubs:
        headers = pub.envelope.headers
        signals.before_task_publish.send(
            sender=headers.get("task"), body=_body(pub), exchange=pub.exchange,
            routing_key=pub.routing_key or pub.queue, headers=headers,
            properties={"correlation_id": pub.envelope.id, "priority": pub.envelope.priority}, declare=[],
            retry_policy=None,
        )


def after(app: TaskQ, pubs: Sequence[Publication]) -> None:
    for pub in pubs:
        headers = pub.envelope.headers
        if signals.after_task_publish.receivers:
            signals.after_task_publish.send(
                sender=headers.get("task"), body=_body(pub), exchange=pub.exchange,
                routing_key=pub.routing_key or pub.queue, headers=headers,
            )
        if app.conf.task_send_sent_event:
            _dispatcher(app).send(
                "task-sent", uuid=pub.envelope.id, name=headers.get("task"), args=headers.get("argsrepr"),
                kwargs=headers.get("kwargsrepr"), retries=headers.get("retries", 0), eta=headers.get("eta"),
                expires=headers.get("expires"), queue=pub.queue,
                exchange=pub.exchange, routing_key=pub.routing_key or pub.queue,
                root_id=headers.get("root_id"), parent_id=headers.get("parent_id"),
            )


def _dispatcher(app: TaskQ) -> EventDispatcher:
    dispatcher = _dispatchers.get(id(app))
    if dispatcher is None:
        dispatcher = _dispatchers[id(app)] = EventDispatcher(app.conf, socket.gethostname())
    return dispatcher
