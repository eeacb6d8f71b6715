"""What every command shares: loading the user's app, options, and one-line errors."""

from __future__ import annotations

import importlib
import logging
import os
import sys
from collections.abc import Callable
from functools import partial
from typing import Any, TypeVar

import click

from taskq.app import TaskQ
from taskq.display import redact
from taskq.errors import ConfigurationError, TaskQError

F = TypeVar("F", bound=Callable[..., Any])
LOG_FORMAT = "[%(asctime)s: %(levelname)s/%(threadName)s] %(message)s"


class CommandError(click.ClickException):
    """A one-line error with exit status 2 (bad input, unreachable server)."""

    exit_code = 2

    def show(self, file: Any = None) -> None:
        click.echo(f"taskq: error: {redact(self.format_message())}", err=True)


def load_app(spec: str) -> TaskQ:
    """``module:attr`` or ``module`` (its ``app``, else its one TaskQ instance)."""
    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())  # the user's project, as Celery does
    module_name, _, attr = spec.partition(":")
    if not module_name:
        raise ConfigurationError(f"-A {spec!r}: expected module:app")
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name and module_name.startswith(exc.name):
            raise ConfigurationError(f"-A {spec!r}: no module named {exc.name!r}") from None
        raise ConfigurationError(f"-A {spec!r}: importing it failed: {exc}") from None
    except Exception as exc:
        raise ConfigurationError(f"-A {spec!r}: importing it failed: {type(exc).__name__}: {exc}") from None
    if attr:
        app = getattr(module, attr, None)
    else:
        app = getattr(module, "app", None)
        if not isinstance(app, TaskQ):
            found = [v for v in vars(module).values() if isinstance(v, TaskQ)]
            app = found[0] if len(found) == 1 else None
    if not isinstance(app, TaskQ):
        raise ConfigurationError(f"-A {spec!r}: no TaskQ app found there")
    app.check()  # bad broker/backend URLs fail here, for every command, before any I/O
    ctx = click.get_current_context(silent=True)
    if ctx is not None:  # close when the command ends: RabbitMQ acks still buffered are written then
        ctx.call_on_close(partial(_close_quietly, app))
    return app


def _close_quietly(app: TaskQ) -> None:
    try:
        app.close()
    except Exception as exc:  # the command's outcome is already printed; an unreachable server stays one line
        click.echo(f"taskq: warning: closing the connections failed: {redact(str(exc))}", err=True)


def app_option(fn: F) -> F:
    return click.option(
        "-A", "--app", "app_spec", envvar="TASKQ_APP", required=True, help="module:app of your project (TASKQ_APP)"
    )(fn)


def setup_logging(level: str, logfile: str | None = None, log_format: str = "text") -> None:
    """``-l`` level, ``--logfile`` (appended to; stderr without it), ``--log-format text|json``."""
    try:
        handler: logging.Handler = logging.FileHandler(logfile) if logfile else logging.StreamHandler(sys.stderr)
    except OSError as exc:
        raise CommandError(f"--logfile {logfile}: {exc.strerror or exc}") from None
    if log_format == "json":
        from taskq.logformat import JSONFormatter

        handler.setFormatter(JSONFormatter())
    else:
        handler.setFormatter(logging.Formatter(LOG_FORMAT))
    logging.basicConfig(level=level.upper(), handlers=[handler])
    # pika narrates every connection step at INFO; keep its warnings and errors only.
    logging.getLogger("pika").setLevel(max(logging.WARNING, logging.getLogger().level))


def split_queues(value: str | None, app: TaskQ) -> list[str]:
    """-Q's queues; without it, every queue of task_queues (else the default queue), as Celery."""
    queues = [q.strip() for q in (value or "").split(",") if q.strip()]
    return queues or run_guarded(lambda: app.router.topology.consumed())


def run_guarded(fn: Callable[[], Any]) -> Any:
    """Turn taskq errors into one-line CLI errors with exit status 2."""
    try:
        return fn()
    except TaskQError as exc:
        raise CommandError(str(exc)) from None
