"""taskq.forklocks: a lock another thread holds when the process forks is free in the child."""

from __future__ import annotations

import gc
import os
import threading
import weakref

from taskq import forklocks


class Holder:
    def __init__(self) -> None:
        self.lock = threading.Lock()


def _renew(holder: Holder) -> None:
    holder.lock = threading.Lock()


def child_can_take(holder: Holder) -> bool:
    """Fork while another thread holds ``holder.lock``; whether the child could take it."""
    taken, release = threading.Event(), threading.Event()

    def hold() -> None:
        with holder.lock:
            taken.set()
            release.wait(10)

    thread = threading.Thread(target=hold)
    thread.start()
    taken.wait(10)
    pid = os.fork()
    if pid == 0:  # the child: no thread of the parent runs here
        os._exit(0 if holder.lock.acquire(timeout=2) else 1)
    release.set()
    thread.join()
    _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status) == 0


def test_a_registered_lock_is_renewed_in_the_child_and_an_unregistered_one_is_not() -> None:
    registered, plain = Holder(), Holder()
    forklocks.renew_after_fork(registered, _renew)
    assert child_can_take(registered)
    assert not child_can_take(plain)  # what the registry is for


def test_the_registry_does_not_keep_its_owners_alive() -> None:
    holder = Holder()
    forklocks.renew_after_fork(holder, _renew)
    gone = weakref.ref(holder)
    del holder
    gc.collect()
    assert gone() is None
