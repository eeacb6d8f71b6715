"""Recycling prefork children: after ``max_tasks_per_child`` tasks, or once the child's
resident memory passes ``max_memory_per_child`` KiB (checked after each task).

The child finishes its task, stops fetching, hands its unstarted messages back to the queue
(as a warm shutdown does) and exits with ``RECYCLED``; the supervisor starts a fresh child
in its place at once, not counted as a crash. No message is lost: everything the child held
and had not run goes back, and what it ran was acked first.
"""

from __future__ import annotations

import os
import resource

RECYCLED = 75  # the exit status of a child that ended to be replaced


def resident_kib() -> int:
    """This process's resident memory now (KiB): /proc on Linux, else its peak."""
    try:
        with open("/proc/self/statm") as f:
            pages = int(f.read().split()[1])
        return pages * os.sysconf("SC_PAGE_SIZE") // 1024
    except (OSError, ValueError, IndexError):
        return int(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)


class Recycler:
    def __init__(self, max_tasks: int, max_memory_kib: int) -> None:
        self.max_tasks = max_tasks
        self.max_memory_kib = max_memory_kib
        self.tasks = 0

    @property
    def active(self) -> bool:
        return self.max_tasks > 0 or self.max_memory_kib > 0

    def after_task(self) -> str | None:
        """Why this child should now be replaced, or None."""
        self.tasks += 1
        if self.max_tasks and self.tasks >= self.max_tasks:
            return f"ran {self.tasks} tasks (max_tasks_per_child={self.max_tasks})"
        if self.max_memory_kib:
            used = resident_kib()
            if used > self.max_memory_kib:
                return f"uses {used} KiB (max_memory_per_child={self.max_memory_kib})"
        return None
