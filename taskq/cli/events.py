"""``taskq events``: tail a fleet's events live, as a table or (``--json``) one JSON line each."""

from __future__ import annotations

import json
import signal
import time
from typing import Any

import click

from taskq.cli.common import CommandError, app_option, load_app
from taskq.errors import TaskQError
from taskq.events.bus import create_bus
from taskq.events.receiver import EventReceiver

COLUMNS = "{time:<12} {type:<17} {hostname:<28} {uuid:<36} {detail}"


def row(event: dict[str, Any]) -> str:
    stamp = time.strftime("%H:%M:%S", time.localtime(float(event.get("timestamp") or 0)))
    detail = ""
    kind = event.get("type", "")
    if kind == "task-received" or kind == "task-sent":
        detail = f"{event.get('name')}{event.get('args', '')}"
    elif kind == "task-succeeded":
        detail = f"{event.get('runtime', 0):.4f}s -> {event.get('result')}"
    elif kind in ("task-failed", "task-retried"):
        detail = str(event.get("exception"))
    elif kind == "worker-heartbeat":
        detail = f"active={event.get('active')} processed={event.get('processed')} load={event.get('loadavg')}"
    return COLUMNS.format(
        time=stamp, type=kind, hostname=str(event.get("hostname", "")), uuid=str(event.get("uuid", "")),
        detail=detail[:120],
    )


@click.command()
@app_option
@click.option("--json", "as_json", is_flag=True, help="One JSON object a line")
@click.option("--limit", type=click.IntRange(1), default=None, help="Stop after this many events")
@click.option("--duration", type=click.FloatRange(0, min_open=True), default=None, help="Stop after this many seconds")
def events(app_spec: str | None, as_json: bool, limit: int | None, duration: float | None) -> None:
    """Tail the events of running workers (task-* need workers started with -E)."""
    try:
        app = load_app(app_spec)
        receiver = EventReceiver(create_bus(app.conf))
    except TaskQError as exc:
        raise CommandError(str(exc)) from None
    except Exception as exc:  # kombu's errors: no broker to subscribe on
        raise CommandError(f"cannot subscribe to events: {exc}") from None
    signal.signal(signal.SIGTERM, lambda s, f: setattr(receiver, "should_stop", True))
    if not as_json:
        click.echo(COLUMNS.format(time="time", type="type", hostname="hostname", uuid="uuid", detail=""))
    try:
        for event in receiver.itercapture(limit=limit, timeout=duration):
            click.echo(json.dumps(event, sort_keys=True, default=repr) if as_json else row(event))
    except KeyboardInterrupt:
        pass
    finally:
        receiver.close()
