"""Writes the generated tables of docs/migrating-from-celery.md from the installed Celery:
every setting of celery/app/defaults.py and every option of Celery's ``celery`` and
``celery worker`` / ``celery beat`` commands, each with what taskq does with it.

    python -m taskq.compat.migration_doc docs/migrating-from-celery.md

Only the text between the ``<!-- generated:NAME -->`` and ``<!-- /generated:NAME -->`` lines is
replaced; tests/unit/test_migration_doc.py fails when the file is not what this writes.
Needs Celery installed (the dev extra).
"""

from __future__ import annotations

import re
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import click

from taskq.cli.celery_flags import GLOBAL_CELERY_ONLY, WORKER_CELERY_ONLY, CeleryOnly
from taskq.compat.setting_names import FIXED, OLD_NAMES, reason_unsupported
from taskq.config import SETTING_NAMES

# Celery commands -> taskq's (None: not supported, with the reason).
COMMANDS: dict[str, tuple[str | None, str]] = {
    "worker": ("taskq worker", ""),
    "beat": ("taskq beat", "also `taskq schedule list|add|remove|pause|resume`"),
    "call": ("taskq call", ""),
    "result": ("taskq result", ""),
    "purge": ("taskq purge", ""),
    "inspect": ("taskq inspect", ""),
    "control": ("taskq control", ""),
    "events": ("taskq events", "a JSON/text stream; no curses monitor"),
    "status": ("taskq inspect ping", ""),
    "list": ("taskq queues", "queues and their lengths"),
    "amqp": (None, "use the broker's own tools (rabbitmqctl, redis-cli) or `taskq queues`"),
    "flower": (None, "Flower speaks Celery's events; taskq's are Celery's format (docs/monitoring.md)"),
    "graph": (None, "not supported"),
    "logtool": (None, "not supported"),
    "migrate": (None, "not supported: dead letters move with `taskq dead-letters requeue`"),
    "multi": (None, "run workers under your service manager (worker/ has a Dockerfile)"),
    "report": (None, "`taskq --version` and the worker's start line"),
    "shell": (None, "`python -i -c 'from proj.celery import app'`"),
    "upgrade": (None, "taskq reads Celery 3's setting names as they are (with a warning)"),
}


def settings_table() -> str:
    from celery.app.defaults import _TO_OLD_KEY, SETTING_KEYS

    rows = ["| Celery setting | Celery 3 name | taskq |", "|---|---|---|"]
    for name in sorted(SETTING_KEYS):
        old = _TO_OLD_KEY.get(name, "")
        status = _setting_status(name)
        if old in OLD_NAMES:
            status += " (its Celery 3 name is read too, with a warning)"
        rows.append(f"| `{name}` | {f'`{old}`' if old else ''} | {status} |")
    return "\n".join(rows)


def _setting_status(name: str) -> str:
    if name in SETTING_NAMES:
        return "same"
    if name in FIXED:
        value, why = FIXED[name]
        return f"accepted when `{value!r}`: {why}"
    reason = reason_unsupported(name)
    return f"not supported: {reason}" if reason else "**no answer yet**"


def cli_table() -> str:
    from celery.bin.beat import beat as celery_beat
    from celery.bin.celery import celery
    from celery.bin.worker import worker as celery_worker

    from taskq.beat.cli import beat
    from taskq.cli import cli
    from taskq.cli.worker import worker

    rows = ["| Celery | taskq |", "|---|---|"]
    for command, (taskq_command, note) in sorted(COMMANDS.items()):
        status = f"`{taskq_command}`" if taskq_command else "not supported"
        rows.append(f"| `celery {command}` | {status}{': ' + note if note else ''} |")
    for title, theirs, ours, refused in (
        ("celery", celery, cli, GLOBAL_CELERY_ONLY),
        ("celery worker", celery_worker, worker, WORKER_CELERY_ONLY),
        ("celery beat", celery_beat, beat, ()),
    ):
        for opts in _options(theirs.params):
            rows.append(f"| `{title} {' / '.join(opts)}` | {_flag_status(opts, ours, refused)} |")
    return "\n".join(rows)


def _options(params: Iterable[Any]) -> list[list[str]]:
    return [[*p.opts, *p.secondary_opts] for p in params if isinstance(p, click.Option)]


def _flag_status(opts: list[str], ours: click.Command, refused: tuple[CeleryOnly, ...]) -> str:
    for names, _takes_value, reason in refused:
        if set(opts) & set(names):
            return f"refused by name: {reason}"
    mine = {o: p for p in ours.params if isinstance(p, click.Option) for o in (*p.opts, *p.secondary_opts)}
    shared = [o for o in opts if o in mine]
    if not shared:
        return "not supported (click's usage error)"
    help_text = (mine[shared[0]].help or "").split(". ")[0]
    return "same" + (f" ({help_text})" if help_text.startswith("Accepted") else "")


def render(text: str) -> str:
    for name, table in (("settings", settings_table()), ("cli", cli_table())):
        pattern = re.compile(rf"(<!-- generated:{name} -->\n)(?:.*?\n)?(<!-- /generated:{name} -->)", re.S)
        if not pattern.search(text):
            raise SystemExit(f"missing <!-- generated:{name} --> markers")
        text = pattern.sub(lambda m, t=table: m.group(1) + t + "\n" + m.group(2), text)  # type: ignore[misc]
    return text


def main(argv: list[str]) -> None:
    if len(argv) != 1:
        raise SystemExit("usage: python -m taskq.compat.migration_doc docs/migrating-from-celery.md")
    path = Path(argv[0])
    path.write_text(render(path.read_text()))


if __name__ == "__main__":
    main(sys.argv[1:])
