"""Replay memory: a signed message runs once, however often its exact bytes are published.

A signature proves who made a message, not that it is new: an exact copy verifies too. So
the worker remembers every signed message it starts, by its signature (unique per signed
message: a retry carries a new timestamp and retry count, so a new signature), until the
message's validity window closes (``TaskMessage.valid_until``); after that the window check
refuses the copy without any memory.

Where it is remembered: on the result backend's server, which is the broker's own server by
default for memory://, sqlite:// and redis:// (one atomic counter with expiry: Redis
INCR + PEXPIRE in one transaction, SQLite an upsert, memory a dict). RabbitMQ and kombu
have no key store: with a result backend configured its server keeps the memory, shared by
every worker; without one each worker process keeps its own window in memory, so a copy
that reaches another process (or arrives after a restart) is not caught there. The window
check holds in every case (docs/security.md).

A broker's own redelivery (``Delivery.redeliveries > 0``: the claim expired, the worker
died) is not a replay: it passes, and the runner's already-finished check applies.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from datetime import datetime, timezone
from typing import Any

from taskq.backends.base import ResultBackend
from taskq.brokers.base import Delivery
from taskq.message import TaskMessage
from taskq.signing import SIGNATURE_HEADER

SEEN_PREFIX = "taskq-seen-"
_SWEEP_EVERY = 1024  # local window: drop expired entries once per this many new ones


class ReplayMemory:
    def __init__(self, backend: Callable[[], ResultBackend | None]) -> None:
        self._backend = backend  # the app's, looked up per call: it is per process (fork)
        self._local: dict[str, float] = {}  # signature -> monotonic expiry (no backend)
        self._lock = threading.Lock()
        self._added = 0

    def seen_before(self, delivery: Delivery, msg: TaskMessage) -> bool:
        """Remember a signed message that is about to start; True if it was seen already
        (a replay). BackendError when the memory cannot be reached."""
        if msg.valid_until is None or delivery.redeliveries:
            return False
        ttl = max((msg.valid_until - datetime.now(timezone.utc)).total_seconds(), 0.001)
        key = SEEN_PREFIX + str(msg.headers.get(SIGNATURE_HEADER))
        backend = self._backend()
        if backend is not None:
            return backend.incr(key, ttl) > 1
        now = time.monotonic()
        with self._lock:
            if self._local.get(key, 0.0) > now:
                return True
            self._local[key] = now + ttl
            self._added += 1
            if self._added % _SWEEP_EVERY == 0:
                self._local = {k: until for k, until in self._local.items() if until > now}
        return False

    def forget(self, headers: dict[str, Any]) -> None:
        """Forget a started message that goes back to its queue unfinished and uncounted
        (a cold shutdown hands its running task back): its next delivery is not a replay."""
        key = SEEN_PREFIX + str(headers.get(SIGNATURE_HEADER))
        backend = self._backend()
        if backend is not None:
            backend.reset_counter(key)
        else:
            with self._lock:
                self._local.pop(key, None)
