"""``taskq queues``, ``taskq purge`` and ``taskq dead-letters``."""

from __future__ import annotations

import datetime as dt
from typing import Any

import click

from taskq.app import TaskQ
from taskq.cli.common import app_option, load_app, run_guarded, split_queues
from taskq.cli.output import Column, json_option, progress, show_table
from taskq.config import url_scheme
from taskq.display import redact

QUEUE_COLUMNS = (Column("queue", "queue"), Column("messages", "messages", "right"), Column("dead", "dead", "right"))
DEAD_LETTER_COLUMNS = (
    Column("id", "id"), Column("queue", "queue"), Column("failed_at", "failed at"), Column("reason", "reason")
)


def queue_names(app: TaskQ) -> list[str]:
    """The queues to list: the broker's, the default one, and on RabbitMQ every queue of the
    vhost when its management API answers."""
    names = set(app.broker.queues()) | {app.conf.task_default_queue}
    if url_scheme(app.conf.broker_url) in ("amqp", "amqps"):
        from taskq.brokers.rabbitmq.management import management_url, vhost_queues

        listed = vhost_queues(app.conf.broker_url, app.conf)
        if listed is None:
            where = redact(management_url(app.conf.broker_url, app.conf))
            click.echo(f"taskq: note: RabbitMQ management API not reachable at {where}: listing known queues", err=True)
        names |= set(listed or ())
    return sorted(names)


@click.command()
@app_option
@json_option
def queues(app_spec: str | None, as_json: bool) -> None:
    """List queues with their message and dead-letter counts."""
    app = run_guarded(lambda: load_app(app_spec))
    broker = app.broker

    def rows() -> list[dict[str, Any]]:
        return [
            {"queue": q, "messages": broker.queue_length(q), "dead": broker.dead_letter_count(q)}
            for q in queue_names(app)
        ]

    show_table(QUEUE_COLUMNS, run_guarded(rows), as_json)


@click.command()
@app_option
@click.option("-Q", "--queues", "queue_names", default=None, help="Comma-separated queues (default: task_queues)")
@click.option("-f", "--force", is_flag=True, help="Do not ask for confirmation")
def purge(app_spec: str | None, queue_names: str | None, force: bool) -> None:
    """Delete all waiting messages from queues."""
    app = run_guarded(lambda: load_app(app_spec))
    names = split_queues(queue_names, app)
    if not force:
        click.confirm(f"Delete all waiting messages of {', '.join(names)}?", abort=True)
    total = 0
    with progress(lambda: sum(run_guarded(lambda: [app.broker.queue_length(q) for q in names])), "purging") as advance:
        for name in names:
            purged = run_guarded(lambda: app.broker.purge(name))  # noqa: B023 - called at once
            total += purged
            advance(purged)
    click.echo(f"purged {total} message(s)")


@click.group("dead-letters")
def dead_letters() -> None:
    """Inspect, requeue or purge dead-lettered messages."""


@dead_letters.command("list")
@app_option
@click.option("-Q", "--queue", default=None)
@click.option("--limit", type=click.IntRange(min=1), default=100)
@json_option
def dl_list(app_spec: str | None, queue: str | None, limit: int, as_json: bool) -> None:
    """List dead letters with their reasons."""
    app = run_guarded(lambda: load_app(app_spec))
    rows = [
        {
            "id": d.id, "queue": d.queue, "reason": d.reason,
            "failed_at": dt.datetime.fromtimestamp(d.failed_at, dt.timezone.utc).isoformat(timespec="seconds"),
        }
        for d in run_guarded(lambda: app.broker.dead_letters(queue, limit))
    ]
    show_table(DEAD_LETTER_COLUMNS, rows, as_json)


@dead_letters.command("requeue")
@app_option
@click.option("-Q", "--queue", default=None)
@click.argument("ids", nargs=-1)
def dl_requeue(app_spec: str | None, queue: str | None, ids: tuple[str, ...]) -> None:
    """Put dead letters (all, or the given ids) back on their queues."""
    app = run_guarded(lambda: load_app(app_spec))
    broker = app.broker
    # One queue at a time, so a terminal's bar moves as each queue's letters are moved.
    names = [queue] if queue else run_guarded(broker.queues)
    total = 0

    def count() -> int:
        return len(ids) or sum(run_guarded(lambda: [broker.dead_letter_count(q) for q in names]))

    with progress(count, "requeuing") as advance:
        for name in names:
            moved = run_guarded(lambda: broker.requeue_dead_letters(name, ids))  # noqa: B023 - called at once
            total += moved
            advance(moved)
    click.echo(f"requeued {total} message(s)")


@dead_letters.command("purge")
@app_option
@click.option("-Q", "--queue", default=None)
def dl_purge(app_spec: str | None, queue: str | None) -> None:
    """Delete dead letters."""
    app = run_guarded(lambda: load_app(app_spec))
    click.echo(f"purged {run_guarded(lambda: app.broker.purge_dead_letters(queue))} dead letter(s)")
