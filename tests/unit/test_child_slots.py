"""The shared slots a prefork child writes and its supervisor reads."""

from __future__ import annotations

import os

from taskq.worker.slots import RECORD, ChildSlots


def test_a_forked_child_publishes_its_owner_to_the_parent() -> None:
    slots = ChildSlots(3)
    slots.publish_owner(0, "stale-owner-of-a-dead-child")
    slots.clear(0)  # the supervisor clears a slot before it starts a child there
    assert slots.owner(0) == ""
    pid = os.fork()
    if pid == 0:
        ok = slots.publish_owner(2, "host:1234:abcd") and not slots.publish_owner(1, "x" * RECORD)
        os._exit(0 if ok else 1)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    assert [slots.owner(i) for i in range(3)] == ["", "", "host:1234:abcd"]
