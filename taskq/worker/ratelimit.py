"""Rate limits per task name: ``rate_limit="100/s" | "10/m" | "2/h"`` (a bare number is per second).

Celery's meaning by default: the rate holds per worker (``taskq worker`` process, all its
pool slots together). With ``rate_limit_scope="global"`` it holds across every worker,
through the broker's Redis server (one script call per message).

Each task name has a virtual clock (GCRA, a token bucket of size one): the time the next
call may start. A message that arrives early reserves the next free start time and goes
back to the broker as a delayed copy of itself due at that time (the original is acked):
the worker runs other tasks meanwhile, and the copy runs on its reservation when it returns
to the same process (another process reserves again: later, never faster than the rate).

``set_rate(task_name, rate)`` changes a task's rate in this process at run time (control).
"""

from __future__ import annotations

import multiprocessing
import re
import threading
import time
import zlib
from typing import TYPE_CHECKING, Any

from taskq.config import url_scheme
from taskq.errors import BrokerError, ConfigurationError

if TYPE_CHECKING:
    from taskq.app import TaskQ

UNITS = {"s": 1.0, "m": 60.0, "h": 3600.0}
_RATE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(?:/\s*([smh]))?\s*$")
EARLY = 0.005  # seconds a reservation may be run ahead of its time
CLOCKS = 256  # shared virtual clocks per worker (task names hash onto them)
SCOPES = ("worker", "global")


def parse_rate(rate: Any) -> float | None:
    """Calls per second for "N/s", "N/m", "N/h" or a bare number; None for no limit (None or 0)."""
    if rate is None:
        return None
    if isinstance(rate, (int, float)) and not isinstance(rate, bool):
        text = str(rate)
    elif isinstance(rate, str):
        text = rate
    else:
        raise ConfigurationError(f"rate_limit must be like '10/s', '10/m' or '10/h', not {rate!r}")
    match = _RATE.match(text)
    if match is None:
        raise ConfigurationError(f"rate_limit must be like '10/s', '10/m' or '10/h', not {rate!r}")
    per_second = float(match.group(1)) / UNITS[match.group(2) or "s"]
    return per_second or None


def check_scope(scope: Any) -> str:
    if scope not in SCOPES:
        raise ConfigurationError(f"rate_limit_scope must be 'worker' or 'global', not {scope!r}")
    return str(scope)


class SharedClocks:
    """Virtual clocks in shared memory, made before the pool forks, so every prefork child
    (and every thread) of one worker draws on the same rate."""

    def __init__(self) -> None:
        self._clocks = multiprocessing.RawArray("d", CLOCKS)
        self._lock = multiprocessing.Lock()

    def reserve(self, name: str, interval: float) -> float:
        """The start time (time.time()) reserved for the next call of ``name``."""
        index = zlib.crc32(name.encode()) % CLOCKS
        with self._lock:
            now = time.time()
            start = max(now, float(self._clocks[index]))
            self._clocks[index] = start + interval
        return start


# Global scope: the same clock on Redis, with each reservation remembered by task id, so a
# delayed copy runs on its reservation whichever worker receives it. Redis's own clock.
GLOBAL_RESERVE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local reserved = redis.call('HGET', KEYS[2], ARGV[1])
if reserved and tonumber(reserved) - tonumber(ARGV[3]) <= now then
  redis.call('HDEL', KEYS[2], ARGV[1])
  return '0'
end
if reserved then return tostring(tonumber(reserved) - now) end
local start = math.max(now, tonumber(redis.call('GET', KEYS[1]) or '0'))
local interval = tonumber(ARGV[2])
redis.call('SET', KEYS[1], tostring(start + interval), 'PX', math.ceil((start - now + interval) * 1000) + 1000)
if start - now <= tonumber(ARGV[3]) then return '0' end
redis.call('HSET', KEYS[2], ARGV[1], tostring(start))
redis.call('EXPIRE', KEYS[2], math.ceil(start - now) + 3600)
return tostring(start - now)
"""


class RateLimiter:
    """Decides, per message, whether its task may start now or how long it must wait."""

    def __init__(self, app: TaskQ, clocks: SharedClocks | None = None) -> None:
        self.app = app
        self._clocks = clocks  # made on first use unless the pool shares one
        self._conn: Any = None
        self._rates: dict[str, float | None] = {}  # set_rate overrides
        self._reserved: dict[str, float] = {}  # task id -> reserved start (this process)
        self._lock = threading.Lock()
        self._script: Any = None

    @property
    def clocks(self) -> SharedClocks:
        with self._lock:  # consumer threads ask at once: all must get the same clocks
            if self._clocks is None:
                self._clocks = SharedClocks()
            return self._clocks

    def set_rate(self, task_name: str, rate: str | float | None) -> None:
        """Change a task's rate in this worker process (None: back to its declared rate)."""
        if rate is None:
            self._rates.pop(task_name, None)
        else:
            self._rates[task_name] = parse_rate(rate)

    def rate_of(self, task_name: str) -> float | None:
        if task_name in self._rates:
            return self._rates[task_name]
        task = self.app.tasks.get(task_name)
        limit = None if task is None else task.options.rate_limit
        return None if limit is None else parse_rate(limit)  # most tasks have none: no call

    def wait(self, task_name: str, task_id: str) -> float:
        """0 when the call may start now, else the seconds until its reserved start."""
        rate = self.rate_of(task_name)
        if rate is None:
            return 0.0
        task = self.app.tasks.get(task_name)
        if task is not None and task.options.rate_limit_scope == "global":
            return self._global_wait(task_name, task_id, 1.0 / rate)
        with self._lock:
            reserved = self._reserved.pop(task_id, None)
        now = time.time()
        if reserved is not None:
            if reserved - EARLY <= now:
                return 0.0
            start = reserved
        else:
            start = self.clocks.reserve(task_name, 1.0 / rate)
        if start - now <= EARLY:
            return 0.0
        with self._lock:
            self._reserved[task_id] = start
        return start - now

    def _global_wait(self, task_name: str, task_id: str, interval: float) -> float:
        url = self.app.conf.broker_url
        if url_scheme(url) not in ("redis", "rediss"):
            raise ConfigurationError(f"rate_limit_scope='global' for {task_name} needs a Redis broker")
        if self._script is None:
            from taskq.brokers.redis.connection import RedisConnector

            self._conn = RedisConnector(url)
            self._script = self._conn.client.register_script(GLOBAL_RESERVE)
        prefix = self.app.conf.broker_transport_options.get("global_keyprefix", "taskq:")
        keys = [f"{prefix}rate:{task_name}", f"{prefix}rate-reserved:{task_name}"]
        with self._conn.errors(BrokerError, "redis rate limit"):
            return float(self._script(keys=keys, args=[task_id, repr(interval), repr(EARLY)]))


def check_app(app: TaskQ) -> None:
    """At worker start: a global rate limit needs a Redis broker (one line, exit 2)."""
    if url_scheme(app.conf.broker_url) in ("redis", "rediss"):
        return
    for task in app.tasks.values():
        if task.options.rate_limit and task.options.rate_limit_scope == "global":
            raise ConfigurationError(f"task {task.name}: rate_limit_scope='global' needs a Redis broker")
