"""This process's id, without a system call each time.

glibc no longer caches getpid(), so ``os.getpid()`` is a system call; the worker's hot paths
(the app's broker/backend properties, brokers checking they were not inherited across a
fork) ask for it several times per task. The value is refreshed in a forked child.
"""

from __future__ import annotations

import os

_pid = [os.getpid()]
os.register_at_fork(after_in_child=lambda: _pid.__setitem__(0, os.getpid()))


def current_pid() -> int:
    return _pid[0]
