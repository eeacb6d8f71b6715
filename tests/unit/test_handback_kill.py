"""The prefork supervisor never kills a child halfway through handing messages back
(taskq/worker/handback.py): a child past its hard time limit that holds its slot's hand-back
lock is killed only once it lets go."""

from __future__ import annotations

import os
import signal
import time

from taskq import TaskQ
from taskq.worker.slots import ChildSlots
from taskq.worker.watchdog import Watchdog


def test_a_child_is_killed_after_its_hand_back_not_during_it() -> None:
    app = TaskQ("handback", broker="memory://handback", backend="none")
    slots = ChildSlots(2)
    watchdog = Watchdog(app, slots)
    to_child, from_parent = os.pipe()
    to_parent, from_child = os.pipe()
    pid = os.fork()
    if pid == 0:  # a child whose task is past its hard deadline, handing messages back
        try:
            slots.publish_task(1, "overrunning", time.monotonic() - 1.0, 1.0)
            with slots.handback.held(1):
                os.write(from_child, b"holding")
                os.read(to_child, 1)  # the parent has tried to kill: finish the hand-back
            os.write(from_child, b"handed back")
            time.sleep(60)
        finally:
            os._exit(0)
    try:
        assert os.read(to_parent, 16) == b"holding"
        # While it hands back, the supervisor's turns pass it by: it is alive
        for _ in range(3):
            assert watchdog.check({pid: 1}) == []
        assert os.waitpid(pid, os.WNOHANG) == (0, 0)
        os.write(from_parent, b"x")
        assert os.read(to_parent, 16) == b"handed back"
        # Once it let go, the next turn kills it
        [kill] = watchdog.check({pid: 1})
        assert (kill.pid, kill.slot, kill.task_id) == (pid, 1, "overrunning")
        _, status = os.waitpid(pid, 0)
        assert os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGKILL
    finally:
        try:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
        except (ProcessLookupError, ChildProcessError):
            pass
        for fd in (to_child, from_parent, to_parent, from_child):
            os.close(fd)
