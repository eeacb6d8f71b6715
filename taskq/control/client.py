"""``app.control``: Celery's client API over the mailbox seam.

``app.control.ping()``, ``app.control.inspect().active()``, ``app.control.broadcast(...)``
and the control shortcuts (``shutdown``, ``pool_grow``, ``rate_limit``, ``add_consumer``,
...) behave as Celery's: replies are lists of ``{hostname: result}``; ``inspect()``'s
methods merge them into one ``{hostname: result}`` dict, or None when nobody answered.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from taskq.control import signing
from taskq.control.mailbox import Mailbox, create_mailbox
from taskq.revocations import Revocations

if TYPE_CHECKING:
    from taskq.app import TaskQ

DEFAULT_TIMEOUT = 1.0
INSPECT_COMMANDS = (
    "ping", "active", "reserved", "scheduled", "registered", "stats", "revoked", "active_queues", "conf", "clock",
    "report",
)


class Control:
    def __init__(self, app: TaskQ) -> None:
        self.app = app
        self._mailbox: Mailbox | None = None
        self._revocations: Revocations | None = None

    @property
    def mailbox(self) -> Mailbox:
        if self._mailbox is None:
            self._mailbox = create_mailbox(self.app.conf)
        return self._mailbox

    def broadcast(
        self, command: str, arguments: dict[str, Any] | None = None, destination: list[str] | None = None,
        reply: bool = False, timeout: float = DEFAULT_TIMEOUT, limit: int | None = None,
    ) -> list[dict[str, Any]] | None:
        """Send ``command`` to every worker (or those in ``destination``); with ``reply``,
        the replies that arrived within ``timeout``."""
        args = dict(arguments or {})
        key = self.app.conf.signing_key
        if key:
            args = signing.sign(key, command, args, destination)
        if not reply:
            self.mailbox.cast(command, args, destination)
            return None
        return self.mailbox.call(command, args, destination, timeout, limit)

    @property
    def revocations(self) -> Revocations:
        """The ids no worker may run, kept on the broker's (or result backend's) server."""
        if self._revocations is None:
            self._revocations = Revocations(self.app)
        return self._revocations

    def revoke(self, task_id: str | Iterable[str], terminate: bool = False, expires: float | None = None) -> None:
        """Every worker skips these tasks, also one started later (they are stored, not only
        broadcast); with ``terminate`` a prefork worker also kills the child running one
        (other pools: docs/worker.md)."""
        self.revocations.revoke(task_id, terminate, expires)

    def inspect(self, destination: list[str] | None = None, timeout: float = DEFAULT_TIMEOUT) -> Inspect:
        return Inspect(self, destination, timeout)

    def ping(self, destination: list[str] | None = None, timeout: float = DEFAULT_TIMEOUT) -> list[dict[str, Any]]:
        return self.broadcast("ping", destination=destination, reply=True, timeout=timeout) or []

    def _command(self, name: str, arguments: dict[str, Any], destination: list[str] | None, reply: bool,
                 timeout: float) -> list[dict[str, Any]] | None:
        return self.broadcast(name, arguments, destination, reply, timeout)

    def shutdown(self, destination: list[str] | None = None, reply: bool = False,
                 timeout: float = DEFAULT_TIMEOUT) -> list[dict[str, Any]] | None:
        return self._command("shutdown", {}, destination, reply, timeout)

    def pool_grow(self, n: int = 1, destination: list[str] | None = None, reply: bool = False,
                  timeout: float = DEFAULT_TIMEOUT) -> list[dict[str, Any]] | None:
        return self._command("pool_grow", {"n": n}, destination, reply, timeout)

    def pool_shrink(self, n: int = 1, destination: list[str] | None = None, reply: bool = False,
                    timeout: float = DEFAULT_TIMEOUT) -> list[dict[str, Any]] | None:
        return self._command("pool_shrink", {"n": n}, destination, reply, timeout)

    def rate_limit(self, task_name: str, rate_limit: str, destination: list[str] | None = None,
                   reply: bool = False, timeout: float = DEFAULT_TIMEOUT) -> list[dict[str, Any]] | None:
        return self._command("rate_limit", {"task_name": task_name, "rate_limit": rate_limit}, destination, reply,
                             timeout)

    def add_consumer(self, queue: str, destination: list[str] | None = None, reply: bool = False,
                     timeout: float = DEFAULT_TIMEOUT) -> list[dict[str, Any]] | None:
        return self._command("add_consumer", {"queue": queue}, destination, reply, timeout)

    def cancel_consumer(self, queue: str, destination: list[str] | None = None, reply: bool = False,
                        timeout: float = DEFAULT_TIMEOUT) -> list[dict[str, Any]] | None:
        return self._command("cancel_consumer", {"queue": queue}, destination, reply, timeout)

    def close(self) -> None:
        if self._mailbox is not None:
            self._mailbox.close()
            self._mailbox = None


class Inspect:
    def __init__(self, control: Control, destination: list[str] | None, timeout: float) -> None:
        self.control = control
        self.destination = destination
        self.timeout = timeout

    def _request(self, command: str, **arguments: Any) -> dict[str, Any] | None:
        replies = self.control.broadcast(
            command, arguments, self.destination, reply=True, timeout=self.timeout
        ) or []
        merged: dict[str, Any] = {}
        for reply in replies:
            merged.update(reply)
        return merged or None

    def ping(self) -> dict[str, Any] | None:
        return self._request("ping")

    def active(self, safe: bool | None = None) -> dict[str, Any] | None:
        return self._request("active", safe=safe)

    def reserved(self, safe: bool | None = None) -> dict[str, Any] | None:
        return self._request("reserved", safe=safe)

    def scheduled(self, safe: bool | None = None) -> dict[str, Any] | None:
        return self._request("scheduled", safe=safe)

    def registered(self, *taskinfoitems: str) -> dict[str, Any] | None:
        return self._request("registered", taskinfoitems=list(taskinfoitems))

    def stats(self) -> dict[str, Any] | None:
        return self._request("stats")

    def revoked(self) -> dict[str, Any] | None:
        return self._request("revoked")

    def active_queues(self) -> dict[str, Any] | None:
        return self._request("active_queues")

    def conf(self, with_defaults: bool = False) -> dict[str, Any] | None:
        return self._request("conf", with_defaults=with_defaults)

    def clock(self) -> dict[str, Any] | None:
        return self._request("clock")

    def report(self) -> dict[str, Any] | None:
        return self._request("report")
