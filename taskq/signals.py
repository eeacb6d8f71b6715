"""In-process hooks with Celery's names and arguments (``from taskq.signals import task_failure``).

One mechanism serves users and taskq itself: task events and metrics are receivers of these
same signals (the ``inspect active`` record is not: every worker writes it, straight from its
runner). A signal nobody listens to costs one truth test at its
call site (``if task_prerun.receivers:``), so the drain rate without listeners is unchanged.

A failing receiver is logged and never stops the task or the worker (as Celery's
``Signal.send`` does); ``send`` returns ``[(receiver, result), ...]``.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any, TypeVar

log = logging.getLogger("taskq.signals")
F = TypeVar("F", bound=Callable[..., Any])


class Signal:
    """A named hook: ``@sig.connect`` (optionally ``sender=``), ``sig.send(sender, **kwargs)``."""

    def __init__(self, name: str, providing_args: tuple[str, ...] = ()) -> None:
        self.name = name
        self.providing_args = providing_args
        # A tuple replaced whole on (dis)connect: send() iterates it without a lock.
        self.receivers: tuple[tuple[Callable[..., Any], Any], ...] = ()
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"<Signal {self.name}: {len(self.receivers)} receiver(s)>"

    def connect(self, receiver: F | None = None, *, sender: Any = None, weak: bool = False) -> Any:
        """Use as ``sig.connect(fn)``, ``@sig.connect`` or ``@sig.connect(sender=...)``.

        ``sender`` limits the receiver to sends from that sender (a task name or object);
        ``weak`` is accepted for Celery compatibility and ignored (receivers are kept)."""
        if receiver is None:
            def decorator(fn: F) -> F:
                self.connect(fn, sender=sender)
                return fn

            return decorator
        with self._lock:
            if not any(r is receiver and s == sender for r, s in self.receivers):
                self.receivers = (*self.receivers, (receiver, sender))
        return receiver

    def disconnect(self, receiver: Callable[..., Any], sender: Any = None) -> bool:
        with self._lock:
            kept = tuple((r, s) for r, s in self.receivers if not (r is receiver and s == sender))
            removed = len(kept) != len(self.receivers)
            self.receivers = kept
        return removed

    def send(self, sender: Any = None, **named: Any) -> list[tuple[Callable[..., Any], Any]]:
        responses: list[tuple[Callable[..., Any], Any]] = []
        for receiver, wanted in self.receivers:
            if wanted is not None and not _matches(wanted, sender):
                continue
            try:
                responses.append((receiver, receiver(signal=self, sender=sender, **named)))
            except Exception as exc:
                log.exception("Signal %s: receiver %r raised %r", self.name, receiver, exc)
                responses.append((receiver, exc))
        return responses


def _matches(wanted: Any, sender: Any) -> bool:
    if wanted is sender or wanted == sender:
        return True
    name = getattr(sender, "name", None)  # a task object matches its name and the reverse
    return name is not None and name == wanted


# Celery's signals, with the arguments Celery passes (celery/signals.py).
before_task_publish = Signal(
    "before_task_publish",
    ("body", "exchange", "routing_key", "headers", "properties", "declare", "retry_policy"),
)
after_task_publish = Signal("after_task_publish", ("body", "exchange", "routing_key"))
task_received = Signal("task_received", ("request",))
task_prerun = Signal("task_prerun", ("task_id", "task", "args", "kwargs"))
task_postrun = Signal("task_postrun", ("task_id", "task", "args", "kwargs", "retval", "state"))
task_success = Signal("task_success", ("result",))
task_failure = Signal("task_failure", ("task_id", "exception", "args", "kwargs", "traceback", "einfo"))
task_retry = Signal("task_retry", ("request", "reason", "einfo"))
task_revoked = Signal("task_revoked", ("request", "terminated", "signum", "expired"))
task_rejected = Signal("task_rejected", ("message", "exc"))
worker_process_init = Signal("worker_process_init")
worker_ready = Signal("worker_ready")
worker_shutdown = Signal("worker_shutdown")
beat_init = Signal("beat_init")

__all__ = [
    "Signal",
    "after_task_publish",
    "beat_init",
    "before_task_publish",
    "task_failure",
    "task_postrun",
    "task_prerun",
    "task_received",
    "task_rejected",
    "task_retry",
    "task_revoked",
    "task_success",
    "worker_process_init",
    "worker_ready",
    "worker_shutdown",
]
