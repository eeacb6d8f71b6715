"""``taskq outbox relay``: move committed outbox rows to the app's broker, in order, each once."""

from __future__ import annotations

import logging
import signal
import threading
from types import FrameType

import click

from taskq.cli.common import CommandError, app_option, load_app, run_guarded, setup_logging
from taskq.errors import BrokerError

log = logging.getLogger("taskq.outbox")


@click.group()
def outbox() -> None:
    """The outbox of transactional enqueue (outbox_url) for a broker that is not PostgreSQL."""


@outbox.command()
@app_option
@click.option("--batch", type=click.IntRange(1, 10_000), default=500, help="Rows moved per transaction")
@click.option("--once", is_flag=True, help="Relay what is there, then exit")
@click.option("-l", "--loglevel", default="info")
def relay(app_spec: str, batch: int, once: bool, loglevel: str) -> None:
    """Relay until SIGTERM/SIGINT (the batch in flight finishes first)."""
    setup_logging(loglevel)
    app = run_guarded(lambda: load_app(app_spec))
    if not app.conf.outbox_url:
        raise CommandError("the app has no outbox_url (TASKQ_OUTBOX_URL): nothing to relay from")
    from taskq.transactional import outbox_for

    source = run_guarded(lambda: outbox_for(app.conf.outbox_url))
    stopping = threading.Event()

    def stop(signum: int, frame: FrameType | None) -> None:
        stopping.set()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    broker = run_guarded(lambda: app.broker)
    backoff, total = 0.5, 0
    while not stopping.is_set():
        try:
            total += source.relay(broker, batch, once=once, stop=stopping.is_set)
            if once:
                break
        except BrokerError as exc:
            if once:
                raise CommandError(str(exc)) from None
            log.warning("Relay interrupted (%s); retrying in %.1fs", exc, backoff)
            stopping.wait(backoff)
            backoff = min(backoff * 2, 10.0)
    click.echo(f"relayed {total} message(s)")
