"""Enqueue inside the caller's own database transaction.

``with app.transaction(conn):`` opens a transaction on the caller's connection (psycopg,
SQLAlchemy Connection or Session, Django; a savepoint when one is open already) and sends
every task of the block through it; a send option ``using=conn`` does the same for one
call. The messages are rows the caller's transaction writes: rolled back, they never
existed; committed, they run at least once.
A PostgreSQL broker stores them in its own table; any other broker gets them through the
outbox (``outbox_url``) and its relay: ``taskq outbox relay``, or ``taskq worker --outbox``
(``relay_until``).
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from typing import TYPE_CHECKING, Any

from taskq.config import url_scheme
from taskq.errors import BrokerError, ConfigurationError

if TYPE_CHECKING:
    from taskq.app import TaskQ
    from taskq.brokers.base import Publication

log = logging.getLogger("taskq.outbox")
_bound: ContextVar[tuple[TaskQ, Any] | None] = ContextVar("taskq_transaction", default=None)


@contextmanager
def transaction(app: TaskQ, conn: Any) -> Iterator[Any]:
    """Commit on leaving the block, roll back on an exception; tasks sent inside go with it."""
    from taskq.brokers.postgres.callers import transaction_for

    enqueue_in(app)  # a broker that cannot is an error before the block runs, not in it
    with transaction_for(conn):
        token = _bound.set((app, conn))
        try:
            yield conn
        finally:
            _bound.reset(token)


def pop_connection(app: TaskQ, options: dict[str, Any]) -> Any | None:
    """The connection to enqueue on: ``using=`` or the enclosing ``app.transaction``; None
    when the send goes to the broker's own connection."""
    using = options.pop("using", None)
    if using is not None:
        return using
    bound = _bound.get()
    return bound[1] if bound is not None and bound[0] is app else None


def enqueue(app: TaskQ, conn: Any, items: Sequence[Publication]) -> None:
    for item in items:
        if item.exchange:  # the outbox keeps a queue per message, not an exchange and key
            raise ConfigurationError(
                f"a message routed through exchange {item.exchange!r} cannot be enqueued in your transaction "
                "(the outbox relays to queues): route it to a queue"
            )
    enqueue_in(app)(conn, items)


def enqueue_in(app: TaskQ) -> Any:
    """The broker's own ``enqueue_in`` (PostgreSQL), else the outbox's (``outbox_url``)."""
    method = getattr(app.broker, "enqueue_in", None)
    if method is not None:
        return method
    if app.conf.outbox_url:
        return outbox_for(app.conf.outbox_url).enqueue_in
    scheme = url_scheme(app.conf.broker_url)
    raise ConfigurationError(
        f"enqueueing in your own transaction on a {scheme}:// broker needs an outbox in your PostgreSQL:"
        " set outbox_url (TASKQ_OUTBOX_URL), e.g. postgresql://host/db?schema=taskq, and run `taskq outbox relay`"
    )


_outboxes: dict[tuple[int, str], Any] = {}


def outbox_for(url: str) -> Any:
    """This process's Outbox for a URL (its connection and table check are made once)."""
    from taskq.brokers.postgres.outbox import Outbox

    key = (os.getpid(), url)
    if key not in _outboxes:
        _outboxes[key] = Outbox(url)
    return _outboxes[key]


def relay_until(app: TaskQ, stop: threading.Event, batch: int = 500, once: bool = False) -> int:
    """Relay the app's outbox to its broker until ``stop`` is set (with ``once``: until the
    outbox is empty); broker outages are waited out with backoff. Returns the count moved.
    A BrokerError ends a ``once`` relay (there is nobody to wait for)."""
    if not app.conf.outbox_url:
        raise ConfigurationError("the app has no outbox_url (TASKQ_OUTBOX_URL): nothing to relay from")
    source = outbox_for(app.conf.outbox_url)
    backoff, total = 0.5, 0
    while not stop.is_set():
        try:
            total += source.relay(app.broker, batch, once=once, stop=stop.is_set)
            if once:
                break
        except BrokerError as exc:
            if once:
                raise
            log.warning("Relay interrupted (%s); retrying in %.1fs", exc, backoff)
            stop.wait(backoff)
            backoff = min(backoff * 2, 10.0)
    return total


def start_relay_thread(app: TaskQ) -> Callable[[], None]:
    """Relay in a daemon thread (a threads/solo worker's ``--outbox``); returns its stop."""
    stop = threading.Event()
    thread = threading.Thread(target=relay_until, args=(app, stop), name="OutboxRelay", daemon=True)
    thread.start()

    def stop_and_join() -> None:
        stop.set()
        thread.join(10)

    return stop_and_join
