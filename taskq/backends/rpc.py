"""Result backend ``rpc://``: results come back as messages to the sender, as Celery's do.

The wire form is Celery 5's (``celery/backends/rpc.py``), so either library reads the other's
replies:

* The sender declares a reply queue of its own, named by a random id, before its first send
  (durable, auto-delete, ``x-expires`` = ``result_expires``, as Celery's ``binding``), and
  names it in each message's ``reply_to`` property. One queue per backend and process
  (Celery has one per thread, ``app.thread_oid``: here any thread of the sender, an
  ``aget`` too, reads the replies); a lock lets one thread at a time use its connection.
  Results are published on a connection per thread.
* The worker publishes every state of the task to the default exchange with routing key =
  that ``reply_to``, ``correlation_id`` = the task id, and body = Celery's JSON result
  document (``application/json``, utf-8, delivery mode 1: not persistent, as Celery's
  ``result_persistent=False``). A message without ``reply_to`` gets no reply.
* The sender reads its queue and keeps the latest state of every task that arrived (the
  ``STATES_KEPT`` most recent tasks), so waiting for one task keeps the others' results.

What rpc:// cannot do, by definition: a state is only visible to the process that sent the
task (any other caller reads PENDING); a reply sent while the sender is disconnected is lost
(its queue is deleted with its last consumer); there is nothing to ``cleanup``. Counters
(delivery counts, signed-message replay marks) live in the worker process only.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
import uuid
from collections import OrderedDict
from typing import Any

import pika
import pika.exceptions

from taskq import states
from taskq.backends.base import ResultBackend
from taskq.brokers.rabbitmq.broker import connection_parameters
from taskq.config import Settings, url_scheme
from taskq.display import redact
from taskq.errors import BackendError, ConfigurationError

log = logging.getLogger("taskq.backends.rpc")
STATES_KEPT = 10_000
_ERRORS = (pika.exceptions.AMQPError, OSError)


class _Link:
    """One thread's connection to RabbitMQ, its reply queue ("" until the first send) and the
    states read from that queue, latest per task id."""

    def __init__(self, params: pika.ConnectionParameters) -> None:
        self.pid = os.getpid()
        self.connection = pika.BlockingConnection(params)
        self.channel = self.connection.channel()
        self.channel.confirm_delivery()  # a result is written before its message is acked
        self.queue = ""
        self.states: OrderedDict[str, bytes] = OrderedDict()

    def on_reply(self, _ch: Any, _method: Any, properties: pika.BasicProperties, body: bytes) -> None:
        task_id = properties.correlation_id or _task_id_in(body)
        if not task_id:
            return  # not a result document: nothing to file it under
        previous = self.states.get(task_id)
        if previous is not None and _is_ready(previous) and not _is_ready(body):
            return  # a late STARTED (sent on another connection) never hides the outcome
        self.states[task_id] = body
        self.states.move_to_end(task_id)
        while len(self.states) > STATES_KEPT:
            self.states.popitem(last=False)

    def close(self) -> None:
        try:
            self.connection.close()
        except _ERRORS:
            pass


class RPCBackend(ResultBackend):
    def __init__(self, url: str, settings: Settings) -> None:
        super().__init__(url, settings)
        if url_scheme(settings.broker_url) not in ("amqp", "amqps"):
            raise ConfigurationError(
                f"result backend rpc:// sends results over RabbitMQ: the broker must be amqp:// or amqps://, "
                f"not {redact(settings.broker_url)!r}"
            )
        self._params = connection_parameters(settings.broker_url)
        # No heartbeats: a blocking connection only answers them while it is being read, so a
        # caller busy elsewhere for minutes would lose its connection, its queue and the
        # replies in it. A dead peer is still noticed by TCP and on the next use.
        self._params.heartbeat = 0
        self._local = threading.local()
        self._counters: dict[str, int] = {}
        self._counters_lock = threading.Lock()
        self._lock = threading.Lock()
        self._reply_link: _Link | None = None

    # -- the thread's link --------------------------------------------------------------------
    def _open(self) -> _Link:
        try:
            return _Link(self._params)
        except _ERRORS as exc:
            raise BackendError(f"rpc:// result backend cannot connect to RabbitMQ: {exc!r}") from None

    def _publisher(self) -> _Link:
        """This thread's connection for sending results."""
        link: _Link | None = getattr(self._local, "link", None)
        if not _usable(link):
            link = self._local.link = self._open()
        assert link is not None
        return link

    def _replies(self) -> _Link | None:
        """The reply queue's link, when this process declared it (call with the lock held)."""
        if self._reply_link is not None and self._reply_link.pid != os.getpid():
            self._reply_link = None  # the parent's: never use (or close) its socket
        return self._reply_link

    def reply_queue(self) -> str:
        """This process's reply queue, declared and consumed on first use; after a lost
        connection, a new one (replies sent to the old one are lost, as with Celery)."""
        with self._lock:
            link = self._replies()
            if link is not None and link.connection.is_open:
                return link.queue
            link = self._open()
            name = str(uuid.uuid4())
            arguments = {"x-expires": int(self.expires * 1000)} if self.expires and self.expires > 0 else None
            try:
                link.channel.queue_declare(name, durable=True, auto_delete=True, arguments=arguments)
                link.channel.basic_consume(name, link.on_reply, auto_ack=True)
            except _ERRORS as exc:
                link.close()
                raise BackendError(f"rpc:// result backend cannot declare its reply queue: {exc!r}") from None
            if self._reply_link is not None:
                link.states = self._reply_link.states  # the states read before the loss
            link.queue, self._reply_link = name, link
            return name

    def _read_replies(self, task_id: str, timeout: float) -> bytes | None:
        """Read what arrived on the reply queue (waiting up to ``timeout`` for something),
        then the latest state of ``task_id``; None when this process sent no task."""
        with self._lock:
            link = self._replies()
            if link is None:
                return None
            if link.connection.is_open:
                try:
                    link.connection.process_data_events(time_limit=timeout)
                except _ERRORS as exc:
                    link.close()
                    log.warning("rpc:// result backend lost its reply queue: %r", exc)
            return link.states.get(task_id)

    # -- primitives ---------------------------------------------------------------------------
    def destination(self, task_id: str, reply_to: str) -> str:
        return json.dumps([reply_to, task_id])

    def _task_of(self, key: str) -> str | None:
        return key[len(self.prefix) :] if key.startswith(self.prefix) else None

    def _get(self, key: str) -> bytes | None:
        task_id = self._task_of(key)
        return None if task_id is None else self._read_replies(task_id, 0)

    def _wait(self, key: str, timeout: float) -> None:
        task_id = self._task_of(key)
        link = self._reply_link
        if task_id is None or link is None or not link.connection.is_open:  # no caller here: it stays PENDING
            time.sleep(min(self.poll_interval, max(timeout, 0.0)))
            return
        # Returns early on a reply; in slices, so other threads get the connection in turn.
        self._read_replies(task_id, min(max(timeout, 0.0), 0.2))

    def _set(self, key: str, value: bytes, ttl: float) -> None:
        self._set_many([(key, value)], ttl)

    def _set_many(self, items: list[tuple[str, bytes]], ttl: float) -> None:
        """Publish each state to its sender's reply queue; once more on a fresh connection
        when the thread's one went stale (an idle worker thread misses heartbeats)."""
        replies = [(reply_to, task_id, value) for key, value in items for reply_to, task_id in [_parse(key)]]
        replies = [reply for reply in replies if reply[0]]
        if not replies:
            return
        for attempt in (1, 2):
            link = self._publisher()
            try:
                for reply_to, task_id, value in replies:
                    properties = pika.BasicProperties(
                        content_type="application/json",
                        content_encoding="utf-8",
                        correlation_id=task_id,
                        delivery_mode=1,
                    )
                    link.channel.basic_publish("", reply_to, value, properties)
                return
            except _ERRORS as exc:
                link.close()
                if attempt == 2:
                    raise BackendError(f"rpc:// result backend cannot send results: {exc!r}") from None

    def _delete(self, key: str) -> None:
        task_id = self._task_of(key)
        with self._lock:
            link = self._replies()
            if task_id is not None and link is not None:
                link.states.pop(task_id, None)
        with self._counters_lock:
            self._counters.pop(key, None)

    def _incr(self, key: str, ttl: float) -> int:
        with self._counters_lock:
            self._counters[key] = count = self._counters.get(key, 0) + 1
        return count

    def close(self) -> None:
        """Close this thread's connection and the reply queue's (the queue goes with it)."""
        link: _Link | None = getattr(self._local, "link", None)
        if link is not None and link.pid == os.getpid():
            link.close()
        self._local.link = None
        with self._lock:
            replies = self._replies()
            if replies is not None:
                replies.close()
            self._reply_link = None


def _usable(link: _Link | None) -> bool:
    return link is not None and link.pid == os.getpid() and link.connection.is_open


def _parse(key: str) -> tuple[str, str]:
    """The (reply_to, task id) of a ``destination``; ("", "") for any other key."""
    try:
        reply_to, task_id = json.loads(key)
    except (ValueError, TypeError):
        return "", ""
    return (reply_to, task_id) if isinstance(reply_to, str) and isinstance(task_id, str) else ("", "")


def _is_ready(body: bytes) -> bool:
    try:
        doc = json.loads(body)
    except (ValueError, TypeError):
        return False
    return isinstance(doc, dict) and doc.get("status") in states.READY_STATES


def _task_id_in(body: bytes) -> str:
    """The ``task_id`` of a reply without correlation_id (Celery before 4 sent those)."""
    try:
        doc = json.loads(body)
    except (ValueError, TypeError):
        return ""
    task_id = doc.get("task_id") if isinstance(doc, dict) else None
    return task_id if isinstance(task_id, str) else ""
