"""Celery's command-line options that taskq does not have: each is recognised by name and
refused in one line with the reason (exit 2), instead of click's generic "no such option".

tests/unit/test_celery_cli.py checks that every option of the installed Celery's
``celery worker`` and ``celery`` commands is either taskq's own or listed here.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import click

from taskq.cli.common import CommandError

F = TypeVar("F", bound=Callable[..., Any])
_SERVICE = "run taskq under your service manager (systemd, Docker: see worker/), which does this"

# (option names, takes a value, why taskq refuses it)
CeleryOnly = tuple[tuple[str, ...], bool, str]

WORKER_CELERY_ONLY: tuple[CeleryOnly, ...] = (
    (("-D", "--detach"), False, _SERVICE),
    (("--pidfile",), True, _SERVICE),
    (("--uid",), True, _SERVICE),
    (("--gid",), True, _SERVICE),
    (("--umask",), True, _SERVICE),
    (("--executable",), True, _SERVICE),
    (("-S", "--statedb"), True, "revocations persist in the result backend (revoke_expires), not a state file"),
    (("--disable-prefetch",), False, "each pool slot fetches for itself; use --prefetch-multiplier 1"),
    (("--pool-start-method",), True, "prefork children are always forked"),
    (("-X", "--exclude-queues"), True, "name the queues to consume with -Q"),
    (("--autoscale",), True, "autoscaling is not supported: run more workers or raise -c"),
    (("-s", "--schedule-filename", "--schedule"), True, "beat keeps its state in beat_store_url, not a file"),
    (("--scheduler",), True, "taskq has one beat scheduler; its store is beat_store_url (docs/beat.md)"),
)

BEAT_CELERY_ONLY: tuple[CeleryOnly, ...] = (
    (("--detach",), False, _SERVICE),
    (("--pidfile",), True, _SERVICE),
    (("--uid",), True, _SERVICE),
    (("--gid",), True, _SERVICE),
    (("--umask",), True, _SERVICE),
    (("--executable",), True, _SERVICE),
    (("-s", "--schedule"), True, "beat keeps its state in beat_store_url (sqlite or Redis), not a file"),
    (("-S", "--scheduler"), True, "taskq has one beat scheduler; its store is beat_store_url (docs/beat.md)"),
    (("--max-interval",), True, "beat sleeps until the next due instant, not on a polling tick"),
    (("--enable-remote-control", "--no-enable-remote-control"), False, "beat has no remote control"),
    (("-n", "--hostname"), True, "beat has no node name"),
    (("-f", "--logfile"), True, "beat logs to stderr; redirect it"),
)

GLOBAL_CELERY_ONLY: tuple[CeleryOnly, ...] = (
    (("--loader",), True, "taskq has no loaders: configure the app in your celery.py"),
    (("--config",), True, "call app.config_from_object('module') in your celery.py"),
)


def celery_only_options(refused: tuple[CeleryOnly, ...]) -> Callable[[F], F]:
    """Hidden options that exist only to refuse Celery's flags by name (on a function, or
    on a click command already made: click appends the options to it)."""

    def decorate(fn: F) -> F:
        for names, takes_value, reason in refused:
            flags = [n for n in names if not n.startswith("--no-")]
            fn = click.option(
                *flags, is_flag=not takes_value, default=None, hidden=True, expose_value=False,
                callback=_refuse(names, reason),
            )(fn)
            if len(flags) < len(names):  # a --x/--no-x pair: the negative form refused as well
                negative = [n for n in names if n.startswith("--no-")]
                fn = click.option(
                    *negative, is_flag=True, default=None, hidden=True, expose_value=False,
                    callback=_refuse(names, reason),
                )(fn)
        return fn

    return decorate


def _refuse(names: tuple[str, ...], reason: str) -> Callable[[click.Context, click.Parameter, Any], None]:
    def callback(ctx: click.Context, param: click.Parameter, value: Any) -> None:
        if value is not None and value is not False:
            raise CommandError(f"{'/'.join(names)} is a Celery option taskq does not support: {reason}")

    return callback
