"""The remote-control seam: broadcast a command, collect replies within a timeout.

Requests and replies have kombu pidbox's shape (kombu/pidbox.py, celery/app/control.py):
a request ``{method, arguments, destination, pattern, matcher, ticket, reply_to}`` with
``clock`` and ``expires`` headers; a reply ``{<hostname>: <result>}`` with the request's
``ticket``. Each broker family implements the two sides below once.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from taskq.sidechannel import family

if TYPE_CHECKING:
    from taskq.config import Settings


class NodeNameTaken(Exception):
    """Another worker already listens under this name (RabbitMQ's exclusive queue)."""


@dataclass
class ControlRequest:
    method: str
    arguments: dict[str, Any]
    destination: list[str] | None = None
    ticket: str | None = None
    reply_to: dict[str, Any] | None = None
    expires: float = 0.0  # epoch seconds; 0: never
    clock: int = 0
    headers: dict[str, Any] = field(default_factory=dict)

    def for_node(self, hostname: str) -> bool:
        if self.destination and hostname not in self.destination:
            return False
        return not (self.expires and self.expires < time.time())


class MailboxNode(Protocol):
    """A worker's end: its own mailbox, read in the worker's control loop."""

    def poll(self, timeout: float) -> list[ControlRequest | str]:
        """Requests received within ``timeout``; a str is a malformed message's description."""
        ...

    def reply(self, request: ControlRequest, hostname: str, result: Any) -> None: ...

    def close(self) -> None: ...


class Mailbox(Protocol):
    """A client's end."""

    def call(
        self, method: str, arguments: dict[str, Any], destination: list[str] | None, timeout: float,
        limit: int | None = None,
    ) -> list[dict[str, Any]]:
        """Broadcast and return the replies (``{hostname: result}`` each) received within ``timeout``."""
        ...

    def cast(self, method: str, arguments: dict[str, Any], destination: list[str] | None) -> None: ...

    def name_in_use(self, hostname: str) -> bool:
        """True when a live worker already answers to ``hostname``."""
        ...

    def node(self, hostname: str) -> MailboxNode: ...

    def close(self) -> None: ...


def parse_request(body: Any, headers: dict[str, Any]) -> ControlRequest | str:
    """A request from a received body, or a description of what is wrong with it."""
    if not isinstance(body, dict):
        return f"not a dict: {type(body).__name__}"
    method, arguments = body.get("method"), body.get("arguments")
    if arguments is None:
        arguments = {}
    destination = body.get("destination")
    if not isinstance(method, str) or not isinstance(arguments, dict):
        return "no method name or arguments that are not a dict"
    if destination is not None and not (
        isinstance(destination, list) and all(isinstance(d, str) for d in destination)
    ):
        return "destination is not a list of names"
    reply_to = body.get("reply_to")
    if reply_to is not None and not (isinstance(reply_to, dict) and isinstance(reply_to.get("routing_key"), str)):
        return "reply_to is not {exchange, routing_key}"
    try:
        expires = float(headers.get("expires") or 0)
        clock = int(headers.get("clock") or 0)
    except (TypeError, ValueError):
        return "expires or clock header is not a number"
    ticket = body.get("ticket")
    return ControlRequest(
        method, arguments, destination, ticket if isinstance(ticket, str) else None, reply_to, expires, clock,
        dict(headers),
    )


def create_mailbox(conf: Settings) -> Mailbox:
    kind = family(conf.broker_url)
    if kind == "sqlite":
        from taskq.control.sqlite_mailbox import SQLiteMailbox

        return SQLiteMailbox(conf.broker_url)
    if kind == "postgresql":
        from taskq.control.postgres_mailbox import PostgresMailbox

        return PostgresMailbox(conf.broker_url, conf.recovery_time)
    if kind == "memory":
        from taskq.control.memory_mailbox import MemoryMailbox

        return MemoryMailbox()
    from taskq.control.kombu_mailbox import KombuMailbox

    return KombuMailbox(conf)
