"""``taskq worker -P gevent``: gevent's monkey-patching, done before anything else is imported.

gevent must patch the standard library (socket, ssl, threading, time.sleep, select...)
before any module takes references to the unpatched functions: the app, the broker clients
(redis-py, pika, sqlite3's callers) and taskq itself. So, as Celery does for ``-P gevent``,
the ``taskq`` package patches at the very top of its ``__init__`` when the command line is
``taskq worker ... -P gevent`` (or ``python -m taskq worker ...``, or ``TASKQ_WORKER_POOL=gevent``
with ``taskq worker``). This module imports only ``os`` and ``sys`` (and ``collections.abc``) for that reason.

Nothing is patched anywhere else: a program that imports taskq as a library is left as it is.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping

POOL = "gevent"
VALUED_FLAGS = frozenset({"-X", "-W", "--check-hash-based-pycs"})  # interpreter options with a value
# The taskq group's options that take a value (taskq/cli/__init__.py): `taskq -A proj worker ...`
GROUP_VALUED = frozenset({"-A", "--app", "-b", "--broker", "--result-backend", "--workdir", "--loader", "--config"})
missing: str | None = None  # set when -P gevent was asked for and gevent is not installed


def taskq_args(orig_argv: list[str]) -> list[str] | None:
    """The arguments after ``taskq`` when this process is the ``taskq`` command (its script
    or ``python -m taskq``); None for any other program."""
    args = orig_argv[1:]
    i = 0
    while i < len(args):
        arg = args[i]
        if arg == "-m":
            return args[i + 2 :] if args[i + 1 : i + 2] == ["taskq"] else None
        if arg in ("-c", "-"):
            return None
        if arg in VALUED_FLAGS:
            i += 2
            continue
        if arg.startswith("-"):
            i += 1
            continue
        return args[i + 1 :] if os.path.basename(arg) == "taskq" else None
    return None


def pool_asked(args: list[str], environ: Mapping[str, str]) -> str | None:
    """The pool ``taskq worker`` was asked for on its command line (last one wins, as click
    reads it), else ``TASKQ_WORKER_POOL``; None for another command."""
    i = 0
    while i < len(args) and args[i].startswith("-"):  # the group's own options come first
        i += 2 if args[i] in GROUP_VALUED else 1
    if args[i : i + 1] != ["worker"]:
        return None
    pool = None
    rest = args[i + 1 :]
    for i, arg in enumerate(rest):
        if arg in ("-P", "--pool") and i + 1 < len(rest):
            pool = rest[i + 1]
        elif arg.startswith("--pool="):
            pool = arg.split("=", 1)[1]
        elif arg.startswith("-P") and len(arg) > 2 and not arg.startswith("--"):
            pool = arg[2:]
    return pool or environ.get("TASKQ_WORKER_POOL") or None


def patch_if_asked() -> None:
    """Monkey-patch when this process is ``taskq worker`` on the gevent pool."""
    global missing
    args = taskq_args(list(getattr(sys, "orig_argv", sys.argv)))
    if args is None or pool_asked(args, os.environ) != POOL:
        return
    try:
        from gevent import monkey  # type: ignore[import-untyped]
    except ImportError:
        missing = "-P gevent needs gevent: pip install 'taskq[gevent]'"
        return
    monkey.patch_all()


def patched() -> bool:
    """True once gevent has patched this process (socket and threading are what the pool needs)."""
    if "gevent.monkey" not in sys.modules:
        return False
    monkey = sys.modules["gevent.monkey"]
    return bool(monkey.is_module_patched("socket") and monkey.is_module_patched("threading"))
