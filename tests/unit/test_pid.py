"""taskq.pid: the cached process id follows a fork, and the app drops its broker in the child."""

from __future__ import annotations

import os

from taskq import TaskQ
from taskq.pid import current_pid


def _in_child(check: object) -> int:
    """Run ``check`` in a forked child; its exit status: 0 when it returned True."""
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child's result comes back as its exit status
        try:
            os._exit(0 if check() else 1)  # type: ignore[operator]
        except BaseException:
            os._exit(2)
    _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status)


def test_current_pid_is_this_process() -> None:
    assert current_pid() == os.getpid()


def test_a_forked_child_sees_its_own_pid() -> None:
    parent = os.getpid()
    assert _in_child(lambda: current_pid() == os.getpid() != parent) == 0


def test_the_app_opens_a_new_broker_after_a_fork(tmp_path: object) -> None:
    app = TaskQ("t", broker=f"sqlite:///{tmp_path}/b.db", backend="none")
    inherited = app.broker
    try:
        assert app.broker is inherited  # same process: the same broker
        assert _in_child(lambda: app.broker is not inherited) == 0
    finally:
        app.close()
