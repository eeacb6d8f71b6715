"""The ``taskq`` command: one click group, one module per command family."""

from __future__ import annotations

import os
import sys

import click

from taskq.beat.cli import beat, schedule
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
def cli() -> None:
    """taskq: a distributed task queue."""


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
