"""``taskq outbox relay``: move committed outbox rows to the app's broker, in order, each once."""

from __future__ import annotations

import signal
import threading
from types import FrameType

import click

from taskq.cli.common import CommandError, app_option, load_app, run_guarded, setup_logging
from taskq.errors import TaskQError


@click.group()
def outbox() -> None:
    """The outbox of transactional enqueue (outbox_url) for a broker that is not PostgreSQL."""


@outbox.command()
@app_option
@click.option("--batch", type=click.IntRange(1, 10_000), default=500, help="Rows moved per transaction")
@click.option("--once", is_flag=True, help="Relay what is there, then exit")
@click.option("-l", "--loglevel", default="info")
def relay(app_spec: str | None, batch: int, once: bool, loglevel: str) -> None:
    """Relay until SIGTERM/SIGINT (the batch in flight finishes first)."""
    setup_logging(loglevel)
    app = run_guarded(lambda: load_app(app_spec))
    from taskq.transactional import relay_until

    stopping = threading.Event()

    def stop(signum: int, frame: FrameType | None) -> None:
        stopping.set()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    try:
        total = relay_until(app, stopping, batch, once)
    except TaskQError as exc:
        raise CommandError(str(exc)) from None
    click.echo(f"relayed {total} message(s)")
