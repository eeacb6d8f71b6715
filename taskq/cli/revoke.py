"""``taskq revoke ID...``: no worker runs these tasks (docs/worker.md)."""

from __future__ import annotations

import click

from taskq.cli.common import app_option, run_guarded
from taskq.cli.tasks import load_app_guarded


@click.command()
@app_option
@click.argument("task_ids", nargs=-1, required=True)
@click.option("--terminate", is_flag=True, help="Also stop the task if it runs now (prefork: its child is killed)")
@click.option("--expires", type=click.FloatRange(min=0, min_open=True), default=None,
              help="Seconds the revocation is kept (default: revoke_expires, 3 h)")
def revoke(app_spec: str | None, task_ids: tuple[str, ...], terminate: bool, expires: float | None) -> None:
    """Revoke tasks by id: every worker skips them, now and after a restart."""
    app = load_app_guarded(app_spec)
    run_guarded(lambda: app.control.revoke(list(task_ids), terminate=terminate, expires=expires))
    for task_id in task_ids:
        click.echo(f"revoked {task_id}" + (" (terminate)" if terminate else ""))
