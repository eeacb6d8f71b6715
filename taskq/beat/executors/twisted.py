"""TwistedExecutor: runs jobs in the reactor's thread pool, as in APScheduler."""

from __future__ import annotations

from typing import Any

from taskq.beat.executors.base import BaseExecutor, ExecutorHost, Outcome, Run, call
from taskq.errors import ConfigurationError


class TwistedExecutor(BaseExecutor):
    _reactor: Any = None

    def start(self, scheduler: ExecutorHost, alias: str) -> None:
        try:
            from twisted.internet import reactor
        except ImportError:  # pragma: no cover - the `twisted` extra
            raise ConfigurationError("TwistedExecutor needs Twisted: pip install 'taskq[twisted]'") from None
        super().start(scheduler, alias)
        self._reactor = getattr(scheduler, "_reactor", None) or reactor

    def _do_submit(self, run: Run) -> None:
        self._reactor.callFromThread(self._in_reactor, run)

    def _in_reactor(self, run: Run) -> None:
        from twisted.internet.threads import deferToThreadPool

        deferred = deferToThreadPool(self._reactor, self._reactor.getThreadPool(), call, run.func, run.args, run.kwargs)
        deferred.addCallback(lambda outcome: self._finished(run, outcome))
        deferred.addErrback(lambda failure: self._finished(run, Outcome(exception=failure.value)))
