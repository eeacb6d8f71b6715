"""Which queues exist and what they are: declared once per process, adopted when foreign.

A work queue is declared passively first. If it exists, re-declaring it with an argument
set that fits (taskq's, then Celery's plain one, then quorum) tells what it is, since a
declare with other arguments fails with 406 on a throwaway admin channel; one log line
says what a queue declared by someone else costs. Kinds: ``priority`` (x-max-priority),
``classic`` (no priorities), ``quorum``, ``foreign`` (anything else).

A queue of ``task_queues`` is declared with its exchanges and bindings as Celery declares
them (durable exchanges of the queue's type, one binding per routing key); a message for an
exchange first declares that exchange and every queue of ``task_queues`` bound to it.
"""

from __future__ import annotations

import logging
from typing import Any

from taskq.brokers.rabbitmq.link import ChannelClosed, Link
from taskq.brokers.rabbitmq.wire import (
    DEAD_SUFFIX,
    check_queue_name,
    dead_queue,
    describe_costs,
    is_internal,
    queue_arguments,
)
from taskq.config import Settings
from taskq.errors import ConfigurationError
from taskq.routing import ExchangeSpec, Topology

log = logging.getLogger("taskq.brokers.rabbitmq")


class QueueCatalog:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.kinds: dict[str, str] = {}  # work queue -> kind
        self.declared: set[str] = set()  # taskq's own dead-letter and delay queues
        self.topology = Topology(settings)
        self.exchanges: set[str] = set()  # exchanges declared with the queues bound to them

    def ensure_queue(self, link: Link, queue: str) -> str:
        """Declare (or adopt) a work queue once per process; returns its kind."""
        kind = self.kinds.get(queue)
        if kind is not None:
            return kind
        check_queue_name(queue)
        spec = self.topology.configured(queue)
        wanted = queue_arguments(queue, self.settings, spec.arguments if spec else None)
        if kind_of(wanted) == "quorum":
            self.ensure_declared(link, dead_queue(queue), {})
        try:
            link.declare(queue, passive=True)
            kind = self.probe(link, queue, wanted)
        except ChannelClosed as exc:
            if exc.reply_code != 404:
                raise
            try:
                link.declare(queue, passive=False, arguments=wanted)
                kind = kind_of(wanted)
            except ChannelClosed as race:  # declared by someone else meanwhile
                if race.reply_code != 406:
                    raise
                kind = self.probe(link, queue, wanted)
        if kind != kind_of(wanted):
            log.warning(
                "Queue %r exists with other arguments than taskq's %s; using it as it is: %s",
                queue,
                wanted,
                describe_costs(kind),
            )
        if spec is not None:
            for binding in spec.bindings:
                if binding.exchange.name:
                    self.declare_exchange(link, binding.exchange)
                    link.bind(queue, binding.exchange.name, binding.routing_key)
        self.kinds[queue] = kind
        return kind

    def declare_exchange(self, link: Link, exchange: ExchangeSpec) -> None:
        try:
            link.declare_exchange(exchange.name, exchange.type, exchange.durable, exchange.auto_delete)
        except ChannelClosed as exc:
            if exc.reply_code != 406:
                raise
            raise ConfigurationError(
                f"exchange {exchange.name!r} exists with other properties than {exchange.type}, "
                f"durable={exchange.durable}, auto_delete={exchange.auto_delete} ({exc})"
            ) from None

    def ensure_exchange_routes(self, link: Link, exchange: str, routed_queue: str) -> None:
        """Before publishing to ``exchange``: it, the queue the route named, and every queue of
        task_queues bound to it exist (once per process)."""
        if exchange in self.exchanges:
            return
        spec = self.topology.exchange(exchange)
        if spec is None:
            raise ConfigurationError(
                f"exchange {exchange!r} is bound by no queue of task_queues (and is not task_default_exchange): "
                "taskq would not know its type; add a Queue bound to it"
            )
        self.declare_exchange(link, spec)
        for name, queue in self.topology.queues.items():
            if any(b.exchange.name == exchange for b in queue.bindings):
                self.ensure_queue(link, name)
        if routed_queue:
            self.ensure_queue(link, routed_queue)
        self.exchanges.add(exchange)

    def forget_exchange(self, exchange: str) -> None:
        """A message came back unroutable: declare the exchange's queues and bindings again next time."""
        self.exchanges.discard(exchange)
        for name, queue in self.topology.queues.items():
            if any(b.exchange.name == exchange for b in queue.bindings):
                self.kinds.pop(name, None)

    def probe(self, link: Link, queue: str, wanted: dict[str, Any]) -> str:
        """What an existing queue is: re-declaring with equal arguments succeeds, others 406."""
        for arguments in (wanted, {}, {"x-queue-type": "quorum"}):
            try:
                link.declare(queue, passive=False, arguments=arguments)
                return kind_of(arguments)
            except ChannelClosed as exc:
                if exc.reply_code != 406:
                    raise
        return "foreign"

    def ensure_declared(self, link: Link, name: str, arguments: dict[str, Any]) -> None:
        if name in self.declared:
            return
        try:
            link.declare(name, passive=False, arguments=arguments)
        except ChannelClosed as exc:
            if exc.reply_code != 406:
                raise
            link.declare(name, passive=True)  # exists with other arguments: use it
        self.declared.add(name)

    def ready_count(self, link: Link, name: str) -> int:
        try:
            return link.declare(name, passive=True)[0]
        except ChannelClosed as exc:
            if exc.reply_code == 404:
                return 0
            raise

    def purge_if_exists(self, link: Link, name: str) -> int:
        try:
            return link.purge(name)
        except ChannelClosed as exc:
            if exc.reply_code == 404:
                return 0
            raise

    def forget(self, name: str) -> None:
        """The queue vanished (a publish came back unroutable): declare it again next time."""
        self.declared.discard(name)
        self.kinds.pop(name, None)

    def names(self) -> list[str]:
        return sorted({*self.kinds, *self.declared})

    def work_queues(self) -> set[str]:
        """Work queues this process used or dead-lettered from."""
        dead = {name[: -len(DEAD_SUFFIX)] for name in self.declared if name.endswith(DEAD_SUFFIX)}
        return {q for q in {*self.kinds, *dead} if not is_internal(q)}


def kind_of(arguments: dict[str, Any]) -> str:
    queue_type = arguments.get("x-queue-type", "classic")
    if queue_type == "quorum":
        return "quorum"
    if queue_type != "classic":
        return "foreign"
    return "priority" if arguments.get("x-max-priority") else "classic"
