"""``taskq dashboard``: the web dashboard (docs/dashboard.md)."""

from __future__ import annotations

import click

from taskq.cli.common import CommandError, app_option, load_app, setup_logging
from taskq.errors import TaskQError


@click.command()
@app_option
@click.option("--port", type=click.IntRange(1, 65535), default=5555, show_default=True, envvar="TASKQ_DASHBOARD_PORT")
@click.option("--bind", default="127.0.0.1", show_default=True, envvar="TASKQ_DASHBOARD_BIND",
              help="Address to listen on; other than loopback it needs --auth or --token")
@click.option("--auth", default=None, envvar="TASKQ_DASHBOARD_AUTH", help="user:password for HTTP Basic authentication")
@click.option("--token", default=None, envvar="TASKQ_DASHBOARD_TOKEN",
              help="A bearer token (a browser opens /?token=... once)")
@click.option("--refresh", type=click.FloatRange(0.1), default=1.0, show_default=True,
              help="Seconds between reads of queue depths, dead letters and beat entries")
@click.option("-l", "--loglevel", default="info", type=click.Choice(["debug", "info", "warning", "error"]))
def dashboard(
    app_spec: str, port: int, bind: str, auth: str | None, token: str | None, refresh: float, loglevel: str
) -> None:
    """Serve the web dashboard: workers, queues, tasks, beat entries, dead letters, /metrics."""
    from taskq.dashboard.server import Options, serve

    options = Options(port, bind, auth, token, refresh)
    try:
        options.check()  # before the app is imported: a public bind without credentials never starts
        app = load_app(app_spec)
    except TaskQError as exc:
        raise CommandError(str(exc)) from None
    setup_logging(loglevel)
    host = f"[{bind}]" if ":" in bind else bind
    click.echo(f"taskq dashboard on http://{host}:{port}/", err=True)
    serve(app, options)
