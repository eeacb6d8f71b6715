"""``taskq inspect`` and ``taskq control``: ask running workers, as ``celery inspect``/``control``.

Bad input is one line with exit status 2: an unknown command, a timeout that is not a
positive number, or ``-d`` names none of which answered (no worker has such a name).
Without ``-d``, no reply at all exits 1."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import click

from taskq.cli.common import CommandError, app_option, load_app
from taskq.control.client import Control
from taskq.errors import TaskQError

INSPECT = ("ping", "active", "reserved", "scheduled", "registered", "stats", "revoked", "active_queues")
# CLI name -> (method, the arguments' names)
CONTROL: dict[str, tuple[str, tuple[str, ...]]] = {
    "shutdown": ("shutdown", ()),
    "pool-grow": ("pool_grow", ("n",)),
    "pool-shrink": ("pool_shrink", ("n",)),
    "rate-limit": ("rate_limit", ("task_name", "rate_limit")),
    "add-consumer": ("add_consumer", ("queue",)),
    "cancel-consumer": ("cancel_consumer", ("queue",)),
}


def parse_timeout(value: str) -> float:
    try:
        timeout = float(value)
    except ValueError:
        raise CommandError(f"--timeout {value!r} is not a number of seconds") from None
    if not 0 < timeout < 3600:
        raise CommandError(f"--timeout {value!r} must be more than 0 and less than 3600 seconds")
    return timeout


def parse_destination(value: str | None) -> list[str] | None:
    if value is None:
        return None
    names = [n.strip() for n in value.split(",") if n.strip()]
    if not names:
        raise CommandError("-d names no worker")
    return names


def target_options(fn: Callable[..., Any]) -> Callable[..., Any]:
    fn = click.option("--json", "as_json", is_flag=True, help="One JSON object: {worker: reply}")(fn)
    fn = click.option("--timeout", "timeout_text", default="1.0", help="Seconds to wait for replies")(fn)
    fn = click.option("-d", "--destination", default=None, help="Comma-separated worker names (default: all)")(fn)
    return app_option(fn)


def ask(app_spec: str | None, method: str, arguments: dict[str, Any], destination: str | None, timeout_text: str,
        as_json: bool) -> None:
    timeout = parse_timeout(timeout_text)
    names = parse_destination(destination)
    try:
        app = load_app(app_spec)
        control = Control(app)
        try:
            replies = control.broadcast(method, arguments, names, reply=True, timeout=timeout) or []
        finally:
            control.close()
    except TaskQError as exc:
        raise CommandError(str(exc)) from None
    merged: dict[str, Any] = {}
    for reply in replies:
        merged.update(reply)
    missing = [n for n in names or [] if n not in merged]
    if names and not merged:
        raise CommandError(f"unknown worker name(s) {', '.join(missing)}: none answered within {timeout:g}s")
    show(merged, as_json)
    for name in missing:
        click.echo(f"-> {name}: no reply within {timeout:g}s", err=True)
    if not merged:
        click.echo(f"taskq: no worker answered within {timeout:g}s", err=True)
        raise SystemExit(1)


def show(merged: dict[str, Any], as_json: bool) -> None:
    if as_json:
        click.echo(json.dumps(merged, sort_keys=True, default=repr))
        return
    for name in sorted(merged):
        reply = merged[name]
        failed = isinstance(reply, dict) and "error" in reply
        click.echo(f"-> {name}: {'ERROR' if failed else 'OK'}")
        text = reply["error"] if failed else json.dumps(reply, indent=4, sort_keys=True, default=repr)
        click.echo("\n".join("    " + line for line in str(text).splitlines()))
    click.echo(f"{len(merged)} node(s) online.")


@click.command(name="inspect")
@click.argument("command")
@target_options
def inspect(command: str, app_spec: str | None, destination: str | None, timeout_text: str, as_json: bool) -> None:
    """Ask workers: ping, active, reserved, scheduled, registered, stats, revoked, active_queues."""
    if command not in INSPECT:
        raise CommandError(f"unknown inspect command {command!r} (one of {', '.join(INSPECT)})")
    ask(app_spec, command, {}, destination, timeout_text, as_json)


@click.command(name="control")
@click.argument("command")
@click.argument("args", nargs=-1)
@target_options
def control(
    command: str, args: tuple[str, ...], app_spec: str | None, destination: str | None, timeout_text: str, as_json: bool
) -> None:
    """Tell workers: shutdown, pool-grow N, pool-shrink N, rate-limit TASK RATE, add-consumer Q, cancel-consumer Q."""
    if command not in CONTROL:
        raise CommandError(f"unknown control command {command!r} (one of {', '.join(CONTROL)})")
    method, wanted = CONTROL[command]
    if len(args) != len(wanted):
        raise CommandError(f"{command} takes {len(wanted)} argument(s): {' '.join(w.upper() for w in wanted)}")
    arguments: dict[str, Any] = dict(zip(wanted, args, strict=True))
    if "n" in arguments:
        if not args[0].isdigit() or int(args[0]) < 1:
            raise CommandError(f"{command}: N must be a positive whole number, not {args[0]!r}")
        arguments["n"] = int(args[0])
    ask(app_spec, method, arguments, destination, timeout_text, as_json)
