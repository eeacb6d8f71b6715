"""``taskq queues``, ``taskq purge`` and ``taskq dead-letters``."""

from __future__ import annotations

import datetime as dt

import click

from taskq.cli.common import app_option, load_app, run_guarded, split_queues
from taskq.display import printable


@click.command()
@app_option
def queues(app_spec: str) -> None:
    """List queues with their message and dead-letter counts."""
    app = run_guarded(lambda: load_app(app_spec))
    broker = app.broker

    def rows() -> list[tuple[str, int, int]]:
        names = sorted(set(broker.queues()) | {app.conf.task_default_queue})
        return [(q, broker.queue_length(q), broker.dead_letter_count(q)) for q in names]

    click.echo(f"{'queue':30} {'messages':>10} {'dead':>8}")
    for name, length, dead in run_guarded(rows):
        click.echo(f"{printable(name):30} {length:>10} {dead:>8}")


@click.command()
@app_option
@click.option("-Q", "--queues", "queue_names", default=None, help="Comma-separated queues (default: the default queue)")
@click.option("-f", "--force", is_flag=True, help="Do not ask for confirmation")
def purge(app_spec: str, queue_names: str | None, force: bool) -> None:
    """Delete all waiting messages from queues."""
    app = run_guarded(lambda: load_app(app_spec))
    names = split_queues(queue_names, app)
    if not force:
        click.confirm(f"Delete all waiting messages of {', '.join(names)}?", abort=True)
    total = sum(run_guarded(lambda: [app.broker.purge(q) for q in names]))
    click.echo(f"purged {total} message(s)")


@click.group("dead-letters")
def dead_letters() -> None:
    """Inspect, requeue or purge dead-lettered messages."""


@dead_letters.command("list")
@app_option
@click.option("-Q", "--queue", default=None)
@click.option("--limit", type=int, default=100)
def dl_list(app_spec: str, queue: str | None, limit: int) -> None:
    """List dead letters with their reasons."""
    app = run_guarded(lambda: load_app(app_spec))
    for d in run_guarded(lambda: app.broker.dead_letters(queue, limit)):
        when = dt.datetime.fromtimestamp(d.failed_at, dt.timezone.utc).isoformat(timespec="seconds")
        click.echo("\t".join(printable(field) for field in (d.id, d.queue, when, d.reason)))


@dead_letters.command("requeue")
@app_option
@click.option("-Q", "--queue", default=None)
@click.argument("ids", nargs=-1)
def dl_requeue(app_spec: str, queue: str | None, ids: tuple[str, ...]) -> None:
    """Put dead letters (all, or the given ids) back on their queues."""
    app = run_guarded(lambda: load_app(app_spec))
    click.echo(f"requeued {run_guarded(lambda: app.broker.requeue_dead_letters(queue, ids))} message(s)")


@dead_letters.command("purge")
@app_option
@click.option("-Q", "--queue", default=None)
def dl_purge(app_spec: str, queue: str | None) -> None:
    """Delete dead letters."""
    app = run_guarded(lambda: load_app(app_spec))
    click.echo(f"purged {run_guarded(lambda: app.broker.purge_dead_letters(queue))} dead letter(s)")
