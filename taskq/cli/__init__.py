"""The ``taskq`` command: one click group, one module per command family.

Each command's module is imported when that command runs (or ``--help`` lists it): ``taskq
worker`` then loads none of beat's CLI, remote control's client or the other commands
(issue 22, startup; docs/performance.md; ``python -X importtime -m taskq worker ...``)."""

from __future__ import annotations

import os
import sys
from typing import Any

import click

from taskq.cli.celery_flags import GLOBAL_CELERY_ONLY, celery_only_options
from taskq.cli.common import CommandError
from taskq.errors import TaskQError

# command name -> "module:attribute"
COMMANDS = {
    "worker": "taskq.cli.worker:worker",
    "beat": "taskq.beat.cli:beat",
    "schedule": "taskq.beat.cli:schedule",
    "call": "taskq.cli.tasks:call",
    "result": "taskq.cli.tasks:result",
    "queues": "taskq.cli.queues:queues",
    "purge": "taskq.cli.queues:purge",
    "dead-letters": "taskq.cli.queues:dead_letters",
    "demo": "taskq.cli.demo:demo",
    "db": "taskq.cli.db:db",
    "results": "taskq.cli.results:results",
    "outbox": "taskq.cli.outbox:outbox",
    "revoke": "taskq.cli.revoke:revoke",
    "inspect": "taskq.cli.inspect:inspect",
    "control": "taskq.cli.inspect:control",
    "events": "taskq.cli.events:events",
    "dashboard": "taskq.cli.dashboard:dashboard",
}


class LazyGroup(click.Group):
    """A group whose commands (COMMANDS) are imported on first use."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(COMMANDS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name in COMMANDS and cmd_name not in self.commands:
            import importlib

            module, attribute = COMMANDS[cmd_name].split(":")
            self.add_command(getattr(importlib.import_module(module), attribute), cmd_name)
        return super().get_command(ctx, cmd_name)


@click.group(cls=LazyGroup)
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
