"""``taskq inspect`` and ``taskq control``: ask running workers, as ``celery inspect``/``control``.

Bad input is one line with exit status 2: an unknown command, a timeout that is not a
positive number, or ``-d`` names none of which answered (no worker has such a name).
Without ``-d``, no reply at all exits 1.

Replies that are lists (``active``, ``reserved``, ``scheduled``, ``registered``, ``revoked``,
``active_queues``) and ``ping`` print as listings do (taskq/cli/output.py): a table on a
terminal, tab-separated lines when piped; ``stats``, ``conf`` and errors print a block per
worker, as Celery's; ``--json`` is one object ``{worker: reply}``."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import click

from taskq.cli.common import CommandError, app_option, load_app
from taskq.cli.output import Column, show_table
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
    show(merged, as_json, method)
    for name in missing:
        click.echo(f"-> {name}: no reply within {timeout:g}s", err=True)
    if not merged:
        click.echo(f"taskq: no worker answered within {timeout:g}s", err=True)
        raise SystemExit(1)


def show(merged: dict[str, Any], as_json: bool, command: str = "") -> None:
    if as_json:
        click.echo(json.dumps(merged, sort_keys=True, default=repr))
        return
    tabular = TABLES.get(command)
    if tabular is not None and all(isinstance(reply, list) for reply in merged.values()):
        columns, row = tabular
        show_table(columns, [row(name, item) for name in sorted(merged) for item in merged[name]])
        click.echo(f"{len(merged)} node(s) online.", err=True)  # stdout holds only the rows (piped: for cut -f)
        return
    if command == "ping" and all(isinstance(reply, dict) and "ok" in reply for reply in merged.values()):
        show_table(PING_COLUMNS, [{"worker": name, "reply": merged[name]["ok"]} for name in sorted(merged)])
        click.echo(f"{len(merged)} node(s) online.", err=True)
        return
    for name in sorted(merged):  # Celery's shape: a block per worker (stats, conf, errors)
        reply = merged[name]
        failed = isinstance(reply, dict) and "error" in reply
        click.echo(f"-> {name}: {'ERROR' if failed else 'OK'}")
        text = reply["error"] if failed else json.dumps(reply, indent=4, sort_keys=True, default=repr)
        click.echo("\n".join("    " + line for line in str(text).splitlines()))
    click.echo(f"{len(merged)} node(s) online.")


def _request_row(worker: str, item: Any) -> dict[str, Any]:
    """One of ``active``/``reserved``/``scheduled``'s requests (scheduled ones wrap it with an eta)."""
    request = item.get("request", item) if isinstance(item, dict) else {}
    started = request.get("time_start")
    return {
        "worker": worker, "id": request.get("id"), "task": request.get("name"),
        "args": f"{request.get('args', '')} {request.get('kwargs', '')}".strip(),
        "when": item.get("eta") if isinstance(item, dict) and "eta" in item else started,
    }


PING_COLUMNS = (Column("worker", "worker"), Column("reply", "reply"))
REQUEST_COLUMNS = (Column("worker", "worker"), Column("id", "id"), Column("task", "task"), Column("args", "args"),
                   Column("when", "started / eta"))
TABLES: dict[str, tuple[tuple[Column, ...], Callable[[str, Any], dict[str, Any]]]] = {
    "active": (REQUEST_COLUMNS, _request_row),
    "reserved": (REQUEST_COLUMNS, _request_row),
    "scheduled": (REQUEST_COLUMNS, _request_row),
    "registered": ((Column("worker", "worker"), Column("task", "task")),
                   lambda worker, item: {"worker": worker, "task": item}),
    "revoked": ((Column("worker", "worker"), Column("id", "id")), lambda worker, item: {"worker": worker, "id": item}),
    "active_queues": ((Column("worker", "worker"), Column("queue", "queue")),
                      lambda worker, item: {"worker": worker, "queue": item.get("name") if isinstance(item, dict)
                                            else item}),
}


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
