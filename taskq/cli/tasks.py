"""``taskq call`` and ``taskq result``."""

from __future__ import annotations

import json
from typing import Any

import click

from taskq.cli.common import CommandError, app_option, load_app, run_guarded


def parse_json(value: str, what: str, kind: type) -> Any:
    try:
        parsed = json.loads(value)
    except ValueError as exc:
        raise CommandError(f"{what} is not valid JSON: {exc}") from None
    if not isinstance(parsed, kind):
        raise CommandError(f"{what} must be a JSON {'array' if kind is list else 'object'}")
    return parsed


@click.command()
@app_option
@click.argument("name")
@click.option("--args", "args_json", default="[]", help="Positional arguments as a JSON array")
@click.option("--kwargs", "kwargs_json", default="{}", help="Keyword arguments as a JSON object")
@click.option("-Q", "--queue", default=None)
@click.option("--countdown", type=float, default=None, help="Run no earlier than this many seconds from now")
@click.option("--priority", type=click.IntRange(0, 9), default=None)
@click.option("--wait", is_flag=True, help="Wait for the result and print it")
@click.option("--timeout", type=float, default=None, help="With --wait: give up after this many seconds")
def call(
    app_spec: str, name: str, args_json: str, kwargs_json: str, queue: str | None, countdown: float | None,
    priority: int | None, wait: bool, timeout: float | None,
) -> None:
    """Send task NAME and print its id."""
    args, kwargs = parse_json(args_json, "--args", list), parse_json(kwargs_json, "--kwargs", dict)
    app = load_app_guarded(app_spec)
    options = {k: v for k, v in {"queue": queue, "countdown": countdown, "priority": priority}.items() if v is not None}
    result = run_guarded(lambda: app.send_task(name, args, kwargs, **options))
    click.echo(result.id)
    if wait:
        click.echo(json.dumps(run_guarded(lambda: result.get(timeout=timeout, propagate=False)), default=repr))


@click.command()
@app_option
@click.argument("task_id")
@click.option("--wait", is_flag=True, help="Wait until the task is ready")
@click.option("--timeout", type=float, default=None)
def result(app_spec: str, task_id: str, wait: bool, timeout: float | None) -> None:
    """Print a task's state and result as JSON."""
    app = load_app_guarded(app_spec)

    def read() -> dict[str, Any]:
        backend = app.AsyncResult(task_id).backend
        meta: dict[str, Any] = backend.wait_for(task_id, timeout) if wait else backend.get_meta(task_id)
        return meta

    click.echo(json.dumps(run_guarded(read), default=repr))


def load_app_guarded(spec: str) -> Any:
    return run_guarded(lambda: load_app(spec))
