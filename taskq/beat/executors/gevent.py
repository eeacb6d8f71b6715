"""GeventExecutor: each run is a greenlet on the hub of the thread that started the
scheduler (handed over thread-safely: the scheduling core runs in a thread of its own)."""

from __future__ import annotations

from typing import Any

from taskq.beat.executors.base import BaseExecutor, ExecutorHost, Run, call
from taskq.errors import ConfigurationError

try:
    import gevent  # type: ignore[import-untyped]
except ImportError:  # pragma: no cover - the `gevent` extra
    gevent = None


class GeventExecutor(BaseExecutor):
    _hub: Any = None

    def start(self, scheduler: ExecutorHost, alias: str) -> None:
        if gevent is None:
            raise ConfigurationError("GeventExecutor needs gevent: pip install 'taskq[gevent]'")
        super().start(scheduler, alias)
        self._hub = gevent.get_hub()

    def _do_submit(self, run: Run) -> None:
        self._hub.loop.run_callback_threadsafe(gevent.spawn, self._greenlet, run)

    def _greenlet(self, run: Run) -> None:
        self._finished(run, call(run.func, run.args, run.kwargs))
