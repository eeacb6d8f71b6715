"""``taskq beat`` and ``taskq schedule list|add|remove|pause|resume``.

Both are attached to the ``taskq`` group (taskq/cli); ``python -m taskq.beat.cli`` runs the
same commands without the rest of the CLI.
"""

from __future__ import annotations

import json
import os
import tempfile
from typing import Any

import click

from taskq.beat.core.entry import Entry
from taskq.beat.core.heartbeat import heartbeat_age
from taskq.beat.core.loop import DEFAULT_LOCK_TTL
from taskq.beat.core.schedule_api import ScheduleAPI, schedule_api_for
from taskq.beat.core.schedules import cron, every
from taskq.cli.celery_flags import BEAT_CELERY_ONLY, celery_only_options
from taskq.errors import TaskQError

DEFAULT_HEARTBEAT = os.path.join(tempfile.gettempdir(), "taskq-beat.heartbeat")


def _fail(exc: Exception) -> click.ClickException:
    from taskq.cli.common import CommandError

    return CommandError(str(exc))


def _load(app_spec: str | None) -> Any:
    from taskq.cli.common import load_app

    try:  # no -A here: the one before the command (taskq -A proj beat), else a one-line error
        return load_app(app_spec)
    except TaskQError as exc:
        raise _fail(exc) from None


app_option = click.option(
    "-A", "--app", "app_spec", envvar="TASKQ_APP", default=None, help="module:app of your project (TASKQ_APP)"
)


@click.command()
@app_option
@click.option(
    "-l", "--loglevel", default="info", type=click.Choice(["debug", "info", "warning", "error"], case_sensitive=False)
)
@click.option(
    "--lock-ttl", type=click.FloatRange(0.1), default=DEFAULT_LOCK_TTL, envvar="TASKQ_BEAT_LOCK_TTL", show_default=True,
    help="Leader lock TTL in seconds: another beat takes over within this time after the leader dies",
)
@click.option(
    "--heartbeat-file", default=DEFAULT_HEARTBEAT, envvar="TASKQ_BEAT_HEARTBEAT_FILE", show_default=True,
    help="File the running beat touches; --check reads it",
)
@click.option("--check", is_flag=True, help="Exit 0 if a beat's heartbeat file is fresh, else 1 (health checks)")
@click.option(
    "--max-age", type=float, default=None, envvar="TASKQ_BEAT_MAX_AGE",
    help="With --check: the oldest heartbeat still fresh, in seconds (default: the lock TTL)",
)
def beat(
    app_spec: str | None, loglevel: str, lock_ttl: float, heartbeat_file: str, check: bool, max_age: float | None
) -> None:
    """Run the periodic scheduler: enqueue beat_schedule and @app.periodic entries on time."""
    if check:
        age = heartbeat_age(heartbeat_file)
        limit = max_age if max_age is not None else lock_ttl
        if age is None or age > limit:
            click.echo(f"taskq beat: heartbeat {heartbeat_file} is {'missing' if age is None else f'{age:.1f}s old'}")
            raise SystemExit(1)
        click.echo(f"taskq beat: alive (heartbeat {age:.1f}s old)")
        raise SystemExit(0)
    from taskq.beat.schedulers.blocking import BlockingScheduler
    from taskq.cli.common import setup_logging

    setup_logging(loglevel)
    app = _load(app_spec)
    try:
        scheduler = BlockingScheduler(app=app, lock_ttl=lock_ttl, heartbeat_path=heartbeat_file)
        scheduler.core.store.lock_owner()  # reach the store now: a bad URL fails here, in one line
    except TaskQError as exc:
        raise _fail(exc) from None
    scheduler.start()


@click.group()
def schedule() -> None:
    """List and change beat entries at runtime (a running beat picks changes up)."""


def _api(app_spec: str | None) -> ScheduleAPI:
    app = _load(app_spec)
    try:
        return schedule_api_for(app)
    except TaskQError as exc:
        raise _fail(exc) from None


def _row(entry: Entry) -> dict[str, Any]:
    nxt = entry.next_run_time.isoformat() if entry.next_run_time and not entry.paused else "-"
    status = "paused" if entry.paused else "active"
    return {"id": entry.id, "task": entry.task, "schedule": repr(entry.schedule), "next_run": nxt,
            "status": status, "source": entry.source}


def _describe(entry: Entry) -> str:
    """One entry as a tab-separated line (what add, pause and resume print)."""
    return "\t".join(_row(entry).values())


def _entry_columns() -> Any:
    from taskq.cli.output import Column

    names = (("id", "id"), ("task", "task"), ("schedule", "schedule"), ("next_run", "next run"), ("status", "status"),
             ("source", "source"))
    return tuple(Column(key, header) for key, header in names)


@schedule.command("list")
@app_option
@click.option("--json", "as_json", is_flag=True, help="One JSON object per entry")
def list_entries(app_spec: str | None, as_json: bool) -> None:
    """Show every entry: id, task, schedule, next run, status, source."""
    api = _api(app_spec)
    try:
        entries = api.get_jobs()
    except TaskQError as exc:
        raise _fail(exc) from None
    if as_json:
        for entry in entries:
            click.echo(json.dumps({**entry.definition_dict(), "state": entry.state.to_dict()}))
        return
    from taskq.cli.output import show_table  # a table on a terminal, tab-separated lines when piped

    show_table(_entry_columns(), [_row(entry) for entry in entries])


def _json_arg(value: str | None, what: str, kind: type) -> Any:
    if value is None:
        return kind()
    try:
        parsed = json.loads(value)
    except ValueError as exc:
        raise click.BadParameter(f"not JSON: {exc}", param_hint=what) from None
    if not isinstance(parsed, kind):
        raise click.BadParameter(f"must be a JSON {kind.__name__}", param_hint=what)
    return parsed


@schedule.command("add")
@app_option
@click.argument("entry_id")
@click.argument("task")
@click.option("--every", "every_seconds", type=click.FloatRange(min=0, min_open=True), default=None, help="Seconds")
@click.option("--cron", "cron_expr", default=None, help='Five-field cron string, e.g. "*/15 9-17 * * mon-fri"')
@click.option("--tz", default=None, help="Timezone of --cron (default: the app's)")
@click.option("--args", "args_json", default=None, help="JSON list")
@click.option("--kwargs", "kwargs_json", default=None, help="JSON object")
@click.option("--queue", default=None)
@click.option("--priority", type=click.IntRange(0, 9), default=None)
@click.option("--replace", is_flag=True, help="Replace an entry with this id")
def add_entry(
    app_spec: str | None,
    entry_id: str,
    task: str,
    every_seconds: float | None,
    cron_expr: str | None,
    tz: str | None,
    args_json: str | None,
    kwargs_json: str | None,
    queue: str | None,
    priority: int | None,
    replace: bool,
) -> None:
    """Add entry ENTRY_ID that sends TASK on a schedule (--every or --cron)."""
    if (every_seconds is None) == (cron_expr is None):
        raise click.UsageError("give exactly one of --every SECONDS or --cron EXPRESSION")
    api = _api(app_spec)
    options = {k: v for k, v in (("queue", queue), ("priority", priority)) if v is not None}
    try:
        when = every(seconds=every_seconds) if every_seconds is not None else cron(str(cron_expr), tz=tz)
        entry = api.add_job(
            task,
            when,
            args=_json_arg(args_json, "--args", list),
            kwargs=_json_arg(kwargs_json, "--kwargs", dict),
            id=entry_id,
            options=options,
            replace_existing=replace,
        )
    except TaskQError as exc:  # ConflictingIdError included
        raise _fail(exc) from None
    click.echo(_describe(entry))


def _simple(name: str, method: str, help_text: str) -> click.Command:
    @click.command(name, help=help_text)
    @app_option
    @click.argument("entry_id")
    def command(app_spec: str | None, entry_id: str) -> None:
        api = _api(app_spec)
        try:
            result = getattr(api, method)(entry_id)
        except TaskQError as exc:
            raise _fail(exc) from None
        click.echo(_describe(result) if isinstance(result, Entry) else f"removed {entry_id}")

    return command


schedule.add_command(_simple("remove", "remove_job", "Remove entry ENTRY_ID."))
schedule.add_command(_simple("pause", "pause_job", "Pause entry ENTRY_ID (it keeps its definition)."))
schedule.add_command(_simple("resume", "resume_job", "Resume entry ENTRY_ID from its next instant after now."))


celery_only_options(BEAT_CELERY_ONLY)(beat)  # Celery's beat flags that taskq lacks: refused by name


@click.group()
def main() -> None:
    """Beat's commands, runnable before they are attached to ``taskq``."""


main.add_command(beat)
main.add_command(schedule)

if __name__ == "__main__":
    main()
