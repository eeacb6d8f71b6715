"""``taskq results cleanup``: delete expired results where the backend does not expire them."""

from __future__ import annotations

import click

from taskq.cli.common import CommandError, app_option, load_app, run_guarded


@click.group()
def results() -> None:
    """Maintain the result backend."""


@results.command()
@app_option
def cleanup(app_spec: str | None) -> None:
    """Delete results older than result_expires (db+ and sqlite backends; Redis expires its own)."""
    app = run_guarded(lambda: load_app(app_spec))
    backend = run_guarded(lambda: app.backend)
    if backend is None:
        raise CommandError("this app has no result backend")
    removed = run_guarded(backend.cleanup)
    click.echo(f"removed {removed} expired result(s)")
