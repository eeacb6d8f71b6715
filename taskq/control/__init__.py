"""Remote control of running workers, in Celery's pidbox format.

* mailbox.py: the seam (broadcast a command, collect replies; a worker's node) and its factory;
* kombu_mailbox.py (amqp://, redis://, kombu+...), sqlite_mailbox.py, memory_mailbox.py;
* client.py: ``app.control`` (Control, Inspect), as Celery's;
* handlers.py: the commands a worker answers; monitor.py: the worker's control process;
* stats.py: what the consumers do, shared with the control process; nodename.py: ``-n``;
* signing.py: signed requests when ``signing_key`` is set.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from taskq.control.mailbox import ControlRequest, Mailbox, MailboxNode, create_mailbox

if TYPE_CHECKING:
    from taskq.control.client import Control, Inspect

__all__ = ["Control", "ControlRequest", "Inspect", "Mailbox", "MailboxNode", "create_mailbox"]


def __getattr__(name: str) -> Any:
    """``Control`` and ``Inspect`` on first use: a worker's control process imports this
    package for its mailbox and never needs the client (issue 22, startup)."""
    if name in ("Control", "Inspect"):
        from taskq.control import client

        return getattr(client, name)
    raise AttributeError(f"module 'taskq.control' has no attribute {name!r}")
