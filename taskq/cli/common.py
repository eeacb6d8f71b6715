"""What every command shares: loading the user's app, options, and one-line errors."""

from __future__ import annotations

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


def app_spec_given(spec: str | None) -> str | None:
    """The ``-A`` a command was run with, after the command or before it (for a child process
    that loads the same app: ``worker --dashboard``)."""
    root = _root_options()
    if root.get("app_spec") and (not spec or _from_environment("app_spec")):
        return str(root["app_spec"])
    return spec


def load_app(spec: str | None) -> TaskQ:
    """The app named by ``-A`` (after the command, or before it: ``taskq -A proj worker``),
    found as Celery finds it (taskq/compat/find_app.py)."""
    from taskq.compat.find_app import find_app

    root = _root_options()
    spec = app_spec_given(spec)  # taskq -A proj worker: the command line beats TASKQ_APP
    if not spec and isinstance(root.get("app"), TaskQ):
        app: TaskQ = root["app"]  # app.start() / app.worker_main()
    elif not spec:
        raise ConfigurationError("-A/--app is required: your project's module (proj, proj.celery:app) or TASKQ_APP")
    else:
        if os.getcwd() not in sys.path:
            sys.path.insert(0, os.getcwd())  # the user's project, as Celery does
        app = find_app(spec)
    for name in ("broker_url", "result_backend"):  # taskq -b URL / --result-backend URL
        if root.get(name):
            app.pin(name, root[name])
    app.check()  # bad broker/backend URLs fail here, for every command, before any I/O
    ctx = click.get_current_context(silent=True)
    if ctx is not None:  # close when the command ends: RabbitMQ acks still buffered are written then
        ctx.call_on_close(partial(_close_quietly, app))
    return app


def _from_environment(param: str) -> bool:
    ctx = click.get_current_context(silent=True)
    return ctx is not None and ctx.get_parameter_source(param) == click.core.ParameterSource.ENVIRONMENT


def _root_options() -> dict[str, Any]:
    """Options given to ``taskq`` itself, before the command (taskq/cli/__init__.py)."""
    ctx = click.get_current_context(silent=True)
    obj = ctx.find_root().obj if ctx is not None else None
    return obj if isinstance(obj, dict) else {}


def _close_quietly(app: TaskQ) -> None:
    try:
        app.close()
    except Exception as exc:  # the command's outcome is already printed; an unreachable server stays one line
        click.echo(f"taskq: warning: closing the connections failed: {redact(str(exc))}", err=True)


def app_option(fn: F) -> F:
    return click.option(
        "-A", "--app", "app_spec", envvar="TASKQ_APP", default=None,
        help="Your project's app: proj, proj.celery or module:app (TASKQ_APP); also before the command",
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
