"""Which command lines make taskq monkey-patch at import (taskq/gevent_patch.py)."""

from __future__ import annotations

import pytest

from taskq.gevent_patch import pool_asked, taskq_args

PY = "/usr/bin/python3"


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        ([PY, "-m", "taskq", "worker", "-P", "gevent"], ["worker", "-P", "gevent"]),
        ([PY, "-u", "-X", "dev", "-m", "taskq", "worker"], ["worker"]),
        ([PY, "/venv/bin/taskq", "worker", "-Pgevent"], ["worker", "-Pgevent"]),
        (["/venv/bin/taskq", "beat"], None),  # orig_argv always starts with the interpreter
        ([PY, "-m", "celery", "worker", "-P", "gevent"], None),
        ([PY, "-c", "import taskq", "worker", "-P", "gevent"], None),
        ([PY, "app.py", "worker", "-P", "gevent"], None),
        ([PY], None),
    ],
)
def test_only_the_taskq_command_is_recognised(argv: list[str], expected: list[str] | None) -> None:
    assert taskq_args(argv) == expected


@pytest.mark.parametrize(
    ("args", "env", "expected"),
    [
        (["worker", "-A", "m:app", "-P", "gevent"], {}, "gevent"),
        (["worker", "--pool", "gevent"], {}, "gevent"),
        (["worker", "--pool=gevent", "-c", "500"], {}, "gevent"),
        (["worker", "-Pgevent"], {}, "gevent"),
        (["worker", "-P", "gevent", "-P", "threads"], {}, "threads"),  # the last one wins, as in click
        (["worker"], {"TASKQ_WORKER_POOL": "gevent"}, "gevent"),
        (["worker", "-P", "threads"], {"TASKQ_WORKER_POOL": "gevent"}, "threads"),
        (["call", "-P", "gevent"], {}, None),
        (["-A", "proj", "worker", "-P", "gevent"], {}, "gevent"),  # Celery's order: the app before the command
        (["-A", "proj", "-q", "--broker", "redis://", "worker", "--pool=gevent"], {}, "gevent"),
        (["-A", "worker", "beat", "-P", "gevent"], {}, None),  # an app named worker, then beat
        ([], {"TASKQ_WORKER_POOL": "gevent"}, None),
    ],
)
def test_the_pool_asked_for(args: list[str], env: dict[str, str], expected: str | None) -> None:
    assert pool_asked(args, env) == expected
