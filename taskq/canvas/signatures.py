"""Signature: one task call as data (Celery's form), to send now, later, or from a worker.

A signature is a dict ``{task, args, kwargs, options, subtask_type, immutable}`` exactly as
Celery serialises it into a message's ``callbacks``, ``errbacks``, ``chain`` and ``chord``
fields, so a worker of either library can send the next step without the producer.

Sending is two steps: ``prepare`` freezes ids and builds the publications (no I/O except
the result backend for a chord), ``apply_async`` publishes them in one ``publish_many``.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from taskq.canvas import ids
from taskq.errors import ConfigurationError
from taskq.task import current_request

if TYPE_CHECKING:
    from taskq.app import TaskQ
    from taskq.brokers.base import Publication
    from taskq.result import AsyncResult

# Options a signature may carry that become fields of the message it is sent as.
SEND_OPTIONS = frozenset(
    {"countdown", "eta", "expires", "queue", "priority", "task_id", "headers", "root_id", "parent_id",
     "link", "link_error", "chain", "chord", "group_id", "group_index"}
)
# Options Celery writes into signatures that have no meaning for taskq's brokers; a worker
# sending a Celery-made step leaves them out (its exchange/routing key route to `queue`).
CELERY_ONLY_OPTIONS = frozenset(
    {"retry", "retry_policy", "exchange", "routing_key", "add_to_parent", "serializer",
     "compression", "shadow", "stamped_headers", "stamps", "ignore_result", "time_limit", "soft_time_limit",
     "producer", "connection", "publisher", "declare", "delivery_mode", "mandatory", "immediate", "group"}
)


class Signature(dict[str, Any]):
    """A task call as data; ``task.s(...)`` makes one, ``signature(dict)`` reads one."""

    subtask_kind: str | None = None

    def __init__(
        self,
        task: Any = None,
        args: Iterable[Any] = (),
        kwargs: dict[str, Any] | None = None,
        options: dict[str, Any] | None = None,
        *,
        immutable: bool = False,
        app: TaskQ | None = None,
    ) -> None:
        name = getattr(task, "name", task)
        if not isinstance(name, str) or not name:
            raise ConfigurationError(f"a signature needs a task or task name, not {task!r}")
        super().__init__(
            task=name, args=list(args), kwargs=dict(kwargs or {}), options=dict(options or {}),
            subtask_type=self.subtask_kind, immutable=immutable,
        )
        self.app = app if app is not None else getattr(task, "app", None)

    # -- fields ---------------------------------------------------------------------------
    @property
    def name(self) -> str:
        return str(self["task"])

    @property
    def args(self) -> list[Any]:
        return list(self.get("args") or [])

    @property
    def kwargs(self) -> dict[str, Any]:
        return dict(self.get("kwargs") or {})

    @property
    def options(self) -> dict[str, Any]:
        opts: dict[str, Any] = self.setdefault("options", {})
        return opts

    @property
    def immutable(self) -> bool:
        return bool(self.get("immutable"))

    @property
    def id(self) -> str | None:
        task_id = self.options.get("task_id")
        return None if task_id is None else str(task_id)

    def __repr__(self) -> str:
        args = ", ".join([*map(repr, self.args), *(f"{k}={v!r}" for k, v in self.kwargs.items())])
        return f"{self.name}({args}){'!' if self.immutable else ''}"

    # -- building -------------------------------------------------------------------------
    def clone(self, args: Iterable[Any] = (), kwargs: dict[str, Any] | None = None, **options: Any) -> Signature:
        """A deep copy with partial arguments: ``args`` go before the signature's own (not on
        an immutable one), ``kwargs`` merge over them."""
        new = copy.deepcopy(dict(self))
        sig = type(self).from_dict(new, self.app)
        if not self.immutable:  # the copy's own args and kwargs: nothing shared with self
            sig["args"] = [*args, *sig.args]
            sig["kwargs"] = {**sig.kwargs, **(kwargs or {})}
        sig.options.update(options)
        return sig

    def set(self, **options: Any) -> Signature:
        """Set send options (queue=, countdown=, priority=, ...) and return the signature."""
        unknown = set(options) - SEND_OPTIONS
        if unknown:
            raise ConfigurationError(f"unknown signature option(s): {', '.join(sorted(unknown))}")
        self.options.update(options)
        return self

    def set_immutable(self, immutable: bool) -> None:
        self["immutable"] = immutable

    def link(self, callback: Signature) -> Signature:
        """Send ``callback`` with this task's result when it succeeds."""
        self.options.setdefault("link", []).append(callback)
        return callback

    def link_error(self, errback: Signature) -> Signature:
        """Send ``errback`` with this task's id when it fails (Celery's task-style errback)."""
        self.options.setdefault("link_error", []).append(errback)
        return errback

    def on_error(self, errback: Signature) -> Signature:
        """As ``link_error``, returning this signature (Celery's chaining form)."""
        self.link_error(errback)
        return self

    def __or__(self, other: Any) -> Any:  # a chain, not dict's merge
        from taskq.canvas.primitives import chain

        if not isinstance(other, Signature):
            return NotImplemented
        return chain(self, other)

    def __deepcopy__(self, memo: dict[int, Any]) -> Signature:
        return type(self).from_dict(copy.deepcopy(dict(self), memo), self.app)  # the app is shared, never copied

    @classmethod
    def from_dict(cls, data: dict[str, Any], app: TaskQ | None = None) -> Signature:
        sig = cls.__new__(cls)
        dict.__init__(sig, data)
        sig.app = app
        return sig

    # -- sending --------------------------------------------------------------------------
    def resolve_app(self, app: TaskQ | None = None) -> TaskQ:
        found = app or self.app
        if found is None:
            raise ConfigurationError(f"signature {self.name!r} has no app: use signature(..., app=app)")
        return found

    def freeze(self, task_id: str | None = None, **options: Any) -> AsyncResult[Any]:
        """Fix the task id (and any given options) now, before sending; returns its result."""
        from taskq.result import AsyncResult

        self.options.update({k: v for k, v in options.items() if v is not None})
        if task_id is not None:
            self.options["task_id"] = task_id
        self.options.setdefault("task_id", ids.new_id())
        app = self.resolve_app()
        if "reply_to" not in self.options and current_request() is None:
            # As Celery's freeze: with rpc:// every step replies to the caller that made the
            # canvas, also those a worker sends later (a chain's next step); "" otherwise.
            reply_to = app.reply_queue()
            if reply_to:
                self.options["reply_to"] = reply_to
        return AsyncResult(str(self.options["task_id"]), app)

    def prepare(
        self, args: Iterable[Any] = (), kwargs: dict[str, Any] | None = None, **options: Any
    ) -> tuple[Any, list[Publication]]:
        """The frozen result and the messages that start this signature."""
        sig = self.clone(args, kwargs, **options)
        result = sig.freeze()
        app = result.app
        send = {k: v for k, v in sig.options.items() if k not in CELERY_ONLY_OPTIONS}
        return result, app.build_publications(sig.name, sig.args, sig.kwargs, **send)

    def apply_async(
        self, args: Iterable[Any] = (), kwargs: dict[str, Any] | None = None, **options: Any
    ) -> Any:
        """Send it: ``args`` go before the signature's own arguments (not when immutable)."""
        result, publications = self.prepare(args, kwargs, **options)
        app = self.resolve_app(getattr(result, "app", None))
        if publications:
            app.publish(publications)
        return result

    def delay(self, *args: Any, **kwargs: Any) -> Any:
        return self.apply_async(args, kwargs)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        """Run the task here, in this process, with the partial arguments added."""
        sig = self.clone(args, kwargs)
        return self.resolve_app().get_task(sig.name)(*sig.args, **sig.kwargs)


def signature(data: Any, app: TaskQ | None = None, **options: Any) -> Signature:
    """A signature from a dict (Celery's form, as a message carries it), a task name or a
    Signature; ``subtask_type`` chooses chain, group or chord."""
    from taskq.canvas.primitives import KINDS

    if isinstance(data, Signature):
        sig = data.clone() if options else data
        if app is not None and sig.app is None:
            sig.app = app
        return sig.set(**options) if options else sig
    if isinstance(data, dict):
        if "task" not in data:
            raise ConfigurationError(f"not a signature (no 'task' key): {data!r}")
        cls = KINDS.get(data.get("subtask_type") or "", Signature)
        sig = cls.from_dict(copy.deepcopy(data), app)
        return sig.set(**options) if options else sig
    return Signature(data, options=options, app=app)
