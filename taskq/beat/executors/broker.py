"""BrokerExecutor (alias ``broker``): a due run is enqueued as an ``@app.task`` message for
the workers, and the scheduler fires EVENT_JOB_EXECUTED or EVENT_JOB_ERROR when the
worker's outcome arrives through the result backend (without a backend no outcome can be
known: only SUBMITTED is fired). ``max_instances`` counts runs whose result is not ready.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any

from taskq.beat.core.entry import Entry
from taskq.beat.core.submit import AppSubmitter
from taskq.beat.executors.base import BaseExecutor, ExecutorHost, Outcome, Run
from taskq.brokers.base import Publication
from taskq.errors import ConfigurationError, TaskQError
from taskq.states import FAILURE, READY_STATES, SUCCESS

if TYPE_CHECKING:
    from taskq.app import TaskQ

log = logging.getLogger("taskq.beat")
POLL_INTERVAL = 0.05  # how often the outcome watcher asks the backend about unfinished runs


class BrokerExecutor(BaseExecutor):
    def __init__(self, app: TaskQ | None = None) -> None:
        self.app = app
        self._submitter: AppSubmitter | None = None
        self._watched: dict[str, Run] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._watcher: threading.Thread | None = None

    @property
    def runs_callables(self) -> bool:
        return False

    def start(self, scheduler: ExecutorHost, alias: str) -> None:
        super().start(scheduler, alias)
        app = self.app or scheduler.app
        if app is None:
            raise ConfigurationError("the broker executor needs an app: Scheduler(app=app)")
        self.app = app
        self._submitter = AppSubmitter(app)
        self._stop.clear()
        if app.backend is not None:
            self._watcher = threading.Thread(target=self._watch, name="taskq-beat-outcomes", daemon=True)
            self._watcher.start()

    def shutdown(self, wait: bool = True) -> None:
        self._stop.set()
        if wait and self._watcher is not None:
            self._watcher.join(timeout=5)

    def _app_submitter(self) -> AppSubmitter:
        if self._submitter is None:
            raise ConfigurationError("the broker executor is not started")
        return self._submitter

    # -- the core's submitter hooks ---------------------------------------------------------
    def publications(self, entry: Entry, instant: datetime) -> list[Publication]:
        return self._app_submitter().publications(entry, instant)

    def launch(self, run: Run, entry: Entry, publications: Sequence[Publication], enqueued: bool) -> None:
        self._app_submitter().start(entry, run.scheduled_run_time, publications, enqueued)
        if self._watcher is not None:
            with self._lock:
                self._watched[run.run_id] = run

    def unfinished(self, pending: Sequence[tuple[str, float | None]]) -> list[tuple[str, float | None]]:
        return self._app_submitter().unfinished(pending)

    def track(self, entry: Entry, run_ids: Sequence[str]) -> list[tuple[str, float | None]]:
        return self._app_submitter().track(entry, run_ids)

    def _do_submit(self, run: Run) -> None:  # never called: launch() enqueues
        raise NotImplementedError

    # -- outcomes -------------------------------------------------------------------------------
    def _watch(self) -> None:
        while not self._stop.wait(POLL_INTERVAL):
            with self._lock:
                runs = list(self._watched.values())
            for run in runs:
                try:
                    outcome = self._outcome(run.run_id)
                except TaskQError as exc:
                    log.warning("beat: could not read the outcome of run %s: %s", run.run_id, exc)
                    continue
                if outcome is not None:
                    with self._lock:
                        self._watched.pop(run.run_id, None)
                    self._finished(run, outcome)

    def _outcome(self, task_id: str) -> Outcome | None:
        assert self.app is not None and self.app.backend is not None
        meta: dict[str, Any] = self.app.backend.get_meta(task_id)
        status = meta.get("status")
        if status not in READY_STATES:
            return None
        if status == SUCCESS:
            return Outcome(retval=meta.get("result"))
        error: Any = meta.get("result")
        if status == FAILURE:
            try:
                self.app.AsyncResult(task_id).get(timeout=1)
            except Exception as exc:
                error = exc
        exception = error if isinstance(error, BaseException) else TaskQError(f"{status}: {error!r}")
        return Outcome(exception=exception, traceback=meta.get("traceback"))
