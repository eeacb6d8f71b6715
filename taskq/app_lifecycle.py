"""The app's configuration signals and ``add_periodic_task``, as Celery has them.

``app.on_configure`` and ``app.on_after_configure`` fire once, when the configuration is
first needed for real (``app.configure()``: a worker or beat starting calls it through
``app.finalize()``); ``app.on_after_finalize`` fires in ``finalize()`` before the settings
freeze. Celery fires the first two on its first read of ``app.conf``; taskq's settings are
read eagerly, so "first needed" is the start of a worker or beat, where Celery projects
add their periodic tasks:

    @app.on_after_configure.connect
    def setup_periodic_tasks(sender, **kwargs):
        sender.add_periodic_task(10.0, say.s("hello"), name="say hello every 10 s")

``add_periodic_task`` called before that waits and is added just before
``on_after_configure`` fires, as in Celery."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from taskq.signals import Signal

if TYPE_CHECKING:
    from taskq.config import Settings

log = logging.getLogger("taskq")


class AppLifecycle:
    """Mixed into TaskQ: its configuration signals and periodic tasks added by signature."""

    conf: Settings

    def _init_lifecycle(self) -> None:
        self.on_configure = Signal("app.on_configure")
        self.on_after_configure = Signal("app.on_after_configure", ("source",))
        self.on_after_finalize = Signal("app.on_after_finalize")
        self.configured = False
        self._pending_periodic: list[tuple[str, dict[str, Any], str | None]] = []

    def configure(self) -> None:
        """Fire on_configure, add the waiting periodic tasks, fire on_after_configure (once)."""
        if self.configured:
            return
        self.on_configure.send(sender=self)
        self.configured = True
        while self._pending_periodic:
            self._add_periodic(*self._pending_periodic.pop(0))
        self.on_after_configure.send(sender=self, source=self.conf)

    def add_periodic_task(
        self, schedule: Any, sig: Any, args: Any = (), kwargs: Any = (), name: str | None = None, **opts: Any
    ) -> str:
        """Add a beat entry that sends ``sig`` (``say.s("hi")``, or a task) on ``schedule``
        (seconds, a timedelta, ``crontab()``, ``solar()``); returns its key: ``name``, else
        the signature's repr (the same signature added twice: the second replaces the first).
        ``opts`` are the send options (queue, priority, expires, ...)."""
        from taskq.beat.core.schedules import as_schedule

        as_schedule(schedule)  # a bad schedule fails here, at the call
        if hasattr(sig, "clone"):
            sig = sig.clone(tuple(args or ()), dict(kwargs or {}))
            task, call_args, call_kwargs, options = sig.name, sig.args, sig.kwargs, dict(sig.options)
        else:  # a task, or anything with a task name
            task, call_args, call_kwargs, options = sig.name, tuple(args or ()), dict(kwargs or {}), {}
        key = name or f"{task}({', '.join([*map(repr, call_args), *(f'{k}={v!r}' for k, v in call_kwargs.items())])})"
        entry = {
            "schedule": schedule,
            "task": task,
            "args": tuple(call_args),
            "kwargs": dict(call_kwargs),
            "options": {**options, **opts},
        }
        if self.configured:
            self._add_periodic(key, entry, name)
        else:
            self._pending_periodic.append((key, entry, name))
        return key

    def _add_periodic(self, key: str, entry: dict[str, Any], name: str | None) -> None:
        schedule = self.conf.beat_schedule
        if name is None and key in schedule:
            log.warning(
                "Periodic task key=%r shadowed a previous unnamed periodic task; pass name= to "
                "add_periodic_task to silence this warning",
                key,
            )
        schedule[key] = entry  # in place: the settings may be frozen already (on_after_finalize)
