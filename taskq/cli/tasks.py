"""``taskq call`` and ``taskq result``."""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any, TextIO

import click

from taskq.app import TaskQ
from taskq.cli.common import CommandError, app_option, load_app, run_guarded
from taskq.cli.output import progress


def parse_json(value: str, what: str, kind: type | tuple[type, ...]) -> Any:
    try:
        parsed = json.loads(value)
    except ValueError as exc:
        raise CommandError(f"{what} is not valid JSON: {exc}") from None
    if not isinstance(parsed, kind):
        names: dict[type, str] = {list: "array", dict: "object"}
        wanted = " or ".join(names[k] for k in (kind if isinstance(kind, tuple) else (kind,)))
        raise CommandError(f"{what} must be a JSON {wanted}")
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
@click.option(
    "--from-file", "calls_file", type=click.File("r"), default=None,
    help="Send one call per line of this file (- for stdin): a JSON array of arguments, or "
    '{"args": [...], "kwargs": {...}}; prints one id per line',
)
def call(
    app_spec: str | None, name: str, args_json: str, kwargs_json: str, queue: str | None, countdown: float | None,
    priority: int | None, wait: bool, timeout: float | None, calls_file: TextIO | None,
) -> None:
    """Send task NAME and print its id."""
    args, kwargs = parse_json(args_json, "--args", list), parse_json(kwargs_json, "--kwargs", dict)
    options = {k: v for k, v in {"queue": queue, "countdown": countdown, "priority": priority}.items() if v is not None}
    if calls_file is not None:
        if wait or args or kwargs:
            raise CommandError("--from-file takes the calls from the file: no --args, --kwargs or --wait with it")
        calls = read_calls(calls_file)
        send_calls(load_app_guarded(app_spec), name, calls, options)
        return
    app = load_app_guarded(app_spec)
    result = run_guarded(lambda: app.send_task(name, args, kwargs, **options))
    click.echo(result.id)
    if wait:
        click.echo(json.dumps(run_guarded(lambda: result.get(timeout=timeout, propagate=False)), default=repr))


@click.command()
@app_option
@click.argument("task_id")
@click.option("--wait", is_flag=True, help="Wait until the task is ready")
@click.option("--timeout", type=float, default=None)
def result(app_spec: str | None, task_id: str, wait: bool, timeout: float | None) -> None:
    """Print a task's state and result as JSON."""
    app = load_app_guarded(app_spec)

    def read() -> dict[str, Any]:
        backend = app.AsyncResult(task_id).backend
        meta: dict[str, Any] = backend.wait_for(task_id, timeout) if wait else backend.get_meta(task_id)
        return meta

    click.echo(json.dumps(run_guarded(read), default=repr))


CHUNK = 1000  # calls per send_many: the bar moves per chunk, the broker batches within it


def read_calls(lines: Iterable[str]) -> list[tuple[list[Any], dict[str, Any]]]:
    """Every call of the file, checked before anything is sent (a bad line sends nothing)."""
    calls: list[tuple[list[Any], dict[str, Any]]] = []
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        what = f"--from-file line {number}"
        value = parse_json(line, what, (list, dict))
        if isinstance(value, list):
            calls.append((value, {}))
            continue
        unknown = set(value) - {"args", "kwargs"}
        if unknown:
            raise CommandError(f"{what}: unknown key(s) {', '.join(sorted(unknown))} (use args and kwargs)")
        call_args, call_kwargs = value.get("args", []), value.get("kwargs", {})
        if not isinstance(call_args, list) or not isinstance(call_kwargs, dict):
            raise CommandError(f"{what}: args must be a JSON array and kwargs a JSON object")
        calls.append((call_args, call_kwargs))
    return calls


def send_calls(app: TaskQ, name: str, calls: list[tuple[list[Any], dict[str, Any]]], options: dict[str, Any]) -> None:
    """send_many in chunks, with a bar on a terminal; prints each task id."""
    with progress(lambda: len(calls), f"sending {len(calls)} call(s)") as advance:
        for start in range(0, len(calls), CHUNK):
            chunk = calls[start : start + CHUNK]
            results = run_guarded(lambda: app.send_many(name, chunk, **options))  # noqa: B023 - called at once
            click.echo("\n".join(r.id for r in results))
            advance(len(chunk))


def load_app_guarded(spec: str | None) -> Any:
    return run_guarded(lambda: load_app(spec))
