"""The ``taskq`` command: one click group, one module per command family."""

from __future__ import annotations

import os
import sys
from typing import Any

import click

from taskq.beat.cli import beat, schedule
from taskq.cli.celery_flags import BEAT_CELERY_ONLY, GLOBAL_CELERY_ONLY, celery_only_options
from taskq.cli.common import CommandError
from taskq.cli.dashboard import dashboard
from taskq.cli.db import db
from taskq.cli.demo import demo
from taskq.cli.events import events
from taskq.cli.inspect import control, inspect
from taskq.cli.outbox import outbox
from taskq.cli.queues import dead_letters, purge, queues
from taskq.cli.results import results
from taskq.cli.revoke import revoke
from taskq.cli.tasks import call, result
from taskq.cli.worker import worker
from taskq.errors import TaskQError


@click.group()
@click.version_option(package_name="taskq")
@click.option("-A", "--app", "app_spec", default=None, help="Your project's app, for every command (as Celery's -A)")
@click.option("-b", "--broker", "broker_url", default=None, help="Broker URL: overrides the app's broker_url")
@click.option("--result-backend", "result_backend", default=None, help="Result backend URL: overrides the app's")
@click.option("--workdir", type=click.Path(exists=True, file_okay=False), default=None, help="Change to this directory")
@click.option("-q", "--quiet", is_flag=True, hidden=True, help="Accepted for Celery: taskq prints no banner")
@click.option("-C", "--no-color", is_flag=True, hidden=True, help="Accepted for Celery: taskq's log has no colours")
@click.option("--skip-checks", is_flag=True, hidden=True, help="Accepted for Celery: taskq runs no Django checks")
@celery_only_options(GLOBAL_CELERY_ONLY)
@click.pass_context
def cli(
    ctx: click.Context, app_spec: str | None, broker_url: str | None, result_backend: str | None,
    workdir: str | None, quiet: bool, no_color: bool, skip_checks: bool,
) -> None:
    """taskq: a distributed task queue."""
    if workdir:
        os.chdir(workdir)
    ctx.ensure_object(dict).update(app_spec=app_spec, broker_url=broker_url, result_backend=result_backend)


def run_with_app(app: Any, argv: list[str] | None) -> None:
    """``app.start()`` / ``app.worker_main()``: the taskq command for this app object."""
    try:
        cli.main(args=argv, prog_name="taskq", obj={"app": app}, standalone_mode=True)
    except TaskQError as exc:
        CommandError(str(exc)).show()
        sys.exit(CommandError.exit_code)


celery_only_options(BEAT_CELERY_ONLY)(beat)  # Celery's beat flags that taskq lacks: refused by name

for command in (
    worker, beat, schedule, call, result, queues, purge, dead_letters, demo, db, results, outbox, revoke,
    inspect, control, events, dashboard,
):
    cli.add_command(command)


def main() -> None:
    """Entry point: click handles usage errors (exit 2); anything unexpected is one line, not a traceback."""
    try:
        cli(standalone_mode=True)
    except TaskQError as exc:  # bad input or an unreachable server a command did not catch itself
        CommandError(str(exc)).show()
        sys.exit(CommandError.exit_code)
    except Exception as exc:
        if os.environ.get("TASKQ_TRACEBACK"):
            raise
        click.echo(f"taskq: unexpected error: {type(exc).__name__}: {exc} (TASKQ_TRACEBACK=1 shows more)", err=True)
        sys.exit(1)
