"""DebugExecutor: runs each job at once in the scheduler's own thread (for tests and
debugging; a slow job delays the schedule)."""

from __future__ import annotations

from taskq.beat.executors.base import BaseExecutor, Run, call


class DebugExecutor(BaseExecutor):
    def _do_submit(self, run: Run) -> None:
        self._finished(run, call(run.func, run.args, run.kwargs))
