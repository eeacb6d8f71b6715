"""``-P asyncio -c N``: up to N ``async def`` tasks at once on one event loop in this process.

N consumer threads fetch, admit, store and ack exactly as the threads pool does (so claims,
acks, warm shutdown and max_deliveries are the same code), but each hands its coroutine to
one event loop thread and waits for it: the coroutines of all N slots run concurrently on
that loop. A plain ``def`` task runs in its consumer thread, as in the threads pool. Each
slot claims one message at a time at first, so N slow coroutines spread over N slots.
pool_grow/pool_shrink add or stop slots as the threads pool does.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

from taskq.app import TaskQ
from taskq.worker.consumer import Consumer
from taskq.worker.pools import ThreadPool

if TYPE_CHECKING:
    from taskq.control.stats import SharedStats
    from taskq.control.steering import Steering


class AsyncioPool(ThreadPool):
    def __init__(
        self, app: TaskQ, queues: Sequence[str], concurrency: int, *, steering: Steering | None = None,
        stats: SharedStats | None = None,
    ) -> None:
        self.loop = asyncio.new_event_loop()
        super().__init__(app, queues, concurrency, prefetch=1, steering=steering, stats=stats)

    def _consumer(self) -> Consumer:
        consumer = super()._consumer()
        consumer.runner.shared_loop = self.loop
        return consumer

    def run(self, on_ready: Callable[[], None] = lambda: None) -> int:
        thread = threading.Thread(target=self.loop.run_forever, name="taskq-event-loop", daemon=True)

        def ready() -> None:  # after the claim keeper process forked: a fork copies no thread
            thread.start()
            on_ready()

        try:
            return super().run(ready)
        finally:
            if thread.is_alive():
                self.loop.call_soon_threadsafe(self.loop.stop)
                thread.join(timeout=5)
            if not self.loop.is_running():
                self.loop.close()
