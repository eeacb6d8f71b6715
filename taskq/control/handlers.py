"""The commands a worker answers, with Celery's names, arguments and reply shapes
(celery/worker/control.py), so ``celery inspect``/``celery control`` and Flower read them.

A handler returns the reply's value for this worker; an unknown or unsupported command
returns ``{"error": ...}`` as Celery's own workers do."""

from __future__ import annotations

import logging
import os
import platform
import resource
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from taskq.control.stats import SharedStats
from taskq.control.steering import Steering
from taskq.display import redact
from taskq.errors import TaskQError
from taskq.worker.ratelimit import parse_rate

if TYPE_CHECKING:
    from taskq.app import TaskQ

log = logging.getLogger("taskq.control")


def taskq_version() -> str:
    # The package's own constant: importlib.metadata cost every worker ~30 ms to import and
    # search the installed distributions (issue 22, start-up time).
    import taskq

    return taskq.__version__


SOFTWARE = {"sw_ident": "taskq", "sw_ver": taskq_version(), "sw_sys": platform.system()}
FIXED_SIZE = {  # pools whose size cannot change while they run, and why
    "solo": "the solo pool runs one task at a time in the worker's main thread; start it with -P threads or "
            "-P prefork to resize it",
}


@dataclass
class WorkerInfo:
    """What the control process knows about the worker it serves."""

    app: TaskQ
    hostname: str
    queues: list[str]
    pool: str
    concurrency: int
    prefetch: int
    stats: SharedStats
    steering: Steering | None = None  # None: this worker cannot be steered (e.g. a test's)
    worker_pid: int = field(default_factory=os.getppid)  # the pool's process (the monitor's parent)
    started: float = field(default_factory=time.monotonic)
    clock: Callable[[], int] = lambda: 0


def request_info(info: WorkerInfo, run: dict[str, Any]) -> dict[str, Any]:
    """Celery's request dict (celery/worker/request.py ``Request.info``): what Flower and
    ``celery inspect active/reserved`` print."""
    return {
        "id": run.get("id"), "name": run.get("name"), "args": run.get("args"), "kwargs": run.get("kwargs"),
        "type": run.get("name"), "hostname": info.hostname, "time_start": run.get("time_start"),
        "acknowledged": False, "delivery_info": {
            "exchange": "", "routing_key": run.get("queue") or "", "priority": run.get("priority", 0),
            "redelivered": bool(run.get("redelivered", False)),
        }, "worker_pid": run.get("worker_pid"),
    }


def active(info: WorkerInfo) -> list[dict[str, Any]]:
    return [request_info(info, run) for run in info.stats.active()]


def reserved(info: WorkerInfo) -> list[dict[str, Any]]:
    """Messages this worker's consumers claimed (prefetched) and have not started yet."""
    return [request_info(info, held) for held in info.stats.reserved()]


def scheduled(info: WorkerInfo) -> list[dict[str, Any]]:
    """Celery lists the eta/countdown tasks its worker holds in memory. A taskq worker holds
    none: the broker keeps a delayed message until it is due (docs/monitoring.md), so this
    worker's list is always empty; ``taskq queues`` shows what waits on the broker."""
    return []


def stats(info: WorkerInfo) -> dict[str, Any]:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    conf = info.app.conf
    return {
        "broker": {"transport": conf.broker_url.split("://", 1)[0], "hostname": redact(conf.broker_url)},
        "clock": str(info.clock()),
        "pid": info.worker_pid,
        "pool": {
            "implementation": f"taskq.worker:{info.pool}", "max-concurrency": info.concurrency,
            "processes": info.stats.pids(), "max-tasks-per-child": "N/A", "put-guarded-by-semaphore": False,
            "timeouts": [0, 0], "writes": {},
        },
        "prefetch_count": info.prefetch * info.concurrency,
        "rusage": {"utime": usage.ru_utime, "stime": usage.ru_stime, "maxrss": usage.ru_maxrss},
        "total": {},
        "processed": info.stats.processed(),
        "uptime": int(time.monotonic() - info.started),
        **SOFTWARE,
    }


def active_queues(info: WorkerInfo) -> list[dict[str, Any]]:
    """Celery's Queue.as_dict(recurse=True) for each consumed queue (direct exchange, same name)."""
    return [
        {
            "name": q, "exchange": {"name": q, "type": "direct", "durable": True, "auto_delete": False,
                                    "delivery_mode": None, "arguments": None, "passive": False},
            "routing_key": q, "queue_arguments": None, "binding_arguments": None, "consumer_arguments": None,
            "durable": True, "exclusive": False, "auto_delete": False, "no_ack": False, "alias": None,
            "bindings": [], "no_declare": None, "expires": None, "message_ttl": None, "max_length": None,
            "max_length_bytes": None, "max_priority": None,
        }
        for q in info.queues
    ]


def conf(info: WorkerInfo, with_defaults: bool = False, **_: Any) -> dict[str, Any]:
    """The settings Flower shows; URLs redacted and the signing key left out."""
    return {
        key: redact(value) if isinstance(value, str) else value
        for key, value in vars(info.app.conf).items()
        if not key.startswith("_") and key != "signing_key" and isinstance(value, (str, int, float, bool, type(None)))
    }


def shutdown(info: WorkerInfo, **_: Any) -> dict[str, str]:
    os.kill(info.worker_pid, signal.SIGTERM)  # the pool's own warm shutdown
    return {"ok": "shutting down"}


def revoked(info: WorkerInfo) -> list[str]:
    """The ids every worker skips (taskq/revocations.py), as Celery's list of revoked ids."""
    try:
        return sorted(r.task_id for r in info.app.control.revocations.list())
    except TaskQError:  # no server keeps revocations for this app (docs/worker.md)
        return []


def revoke(info: WorkerInfo, task_id: str | list[str], terminate: bool = False, **_: Any) -> dict[str, str]:
    """Celery's ``revoke`` broadcast (``celery control revoke``, Celery's app.control.revoke):
    stored where every taskq worker reads it, a later one too."""
    ids = [task_id] if isinstance(task_id, str) else [str(i) for i in task_id]
    try:
        info.app.control.revocations.revoke(ids, bool(terminate))
    except TaskQError as exc:
        return {"error": f"revoke: {exc}"}
    return {"ok": f"tasks {', '.join(ids)} flagged as revoked"}


def _steering(info: WorkerInfo, command: str) -> Steering | str:
    """The worker's steering, or why ``command`` cannot change this worker."""
    if info.steering is None:
        return f"{command}: this worker cannot be steered (it was not started by taskq worker)"
    return info.steering


def _count(n: Any) -> int | None:
    """A positive whole number of consumers (Celery's CLI sends an int, others may send text)."""
    if isinstance(n, str) and n.strip().isdigit():
        n = int(n)
    return n if isinstance(n, int) and not isinstance(n, bool) and n > 0 else None


def resize(info: WorkerInfo, command: str, n: Any, sign: int) -> dict[str, str]:
    """pool_grow (``sign`` 1) and pool_shrink (-1): the pool starts or stops ``n`` consumers."""
    if info.pool in FIXED_SIZE:
        return {"error": f"{command}: {FIXED_SIZE[info.pool]}"}
    steering = _steering(info, command)
    if isinstance(steering, str):
        return {"error": steering}
    count = _count(n)
    if count is None:
        return {"error": f"{command}: n must be a positive whole number, not {n!r}"}
    now = steering.wanted.size
    size = now + sign * count
    if size < 1:
        return {"error": f"{command}: the pool has {now} consumer(s) and keeps at least 1"}
    if size > steering.ceiling:
        return {"error": f"{command}: the pool has {now} consumer(s) and grows to at most {steering.ceiling} "
                         "(4 times its starting size, at least 16)"}
    steering.change(size=size)
    info.concurrency = size
    return {"ok": "pool will grow" if sign > 0 else "pool will shrink"}


def pool_grow(info: WorkerInfo, n: Any = 1, **_: Any) -> dict[str, str]:
    return resize(info, "pool_grow", n, 1)


def pool_shrink(info: WorkerInfo, n: Any = 1, **_: Any) -> dict[str, str]:
    return resize(info, "pool_shrink", n, -1)


def rate_limit(info: WorkerInfo, task_name: str, rate_limit: Any, **_: Any) -> dict[str, str]:
    """Celery's replies and meaning: a new rate for one task in this worker (every pool
    process); 0 or "" lifts the limit."""
    try:
        per_second = parse_rate(rate_limit or None)
    except TaskQError as exc:
        return {"error": f"Invalid rate limit string: {exc}"}
    if task_name not in info.app.tasks:
        log.error("Rate limit attempt for unknown task %s", task_name)
        return {"error": "unknown task"}
    steering = _steering(info, "rate_limit")
    if isinstance(steering, str):
        return {"error": steering}
    rates = dict(steering.wanted.rates)
    rates[task_name] = str(rate_limit) if per_second else "0"
    steering.change(rates=rates)
    if not per_second:
        log.info("Rate limits disabled for tasks of type %s", task_name)
        return {"ok": "rate limit disabled successfully"}
    log.info("New rate limit for tasks of type %s: %s.", task_name, rate_limit)
    return {"ok": "new rate limit set successfully"}


def add_consumer(info: WorkerInfo, queue: str, **_: Any) -> dict[str, str]:
    """Start fetching from ``queue`` too (Celery's exchange/routing options are not used:
    a taskq queue is its own direct route)."""
    steering = _steering(info, "add_consumer")
    if isinstance(steering, str):
        return {"error": steering}
    if not isinstance(queue, str) or not queue:
        return {"error": f"add_consumer: queue must be a name, not {queue!r}"}
    if queue in steering.wanted.queues:
        return {"ok": f"already consuming from {queue!r}"}
    try:
        info.app.broker.queue_length(queue)  # a name the broker refuses fails here, not in every fetch
    except TaskQError as exc:
        return {"error": f"add_consumer: {exc}"}
    try:
        steering.change(queues=[*steering.wanted.queues, queue])
    except ValueError as exc:
        return {"error": f"add_consumer: {exc}"}
    info.queues = list(steering.wanted.queues)
    return {"ok": f"add consumer {queue}"}


def cancel_consumer(info: WorkerInfo, queue: str, **_: Any) -> dict[str, str]:
    """Stop fetching from ``queue``; messages already claimed from it still run."""
    steering = _steering(info, "cancel_consumer")
    if isinstance(steering, str):
        return {"error": steering}
    queues = [q for q in steering.wanted.queues if q != queue]
    if len(queues) == len(steering.wanted.queues):
        return {"error": f"cancel_consumer: not consuming from {queue!r}"}
    if not queues:
        return {"error": f"cancel_consumer: {queue!r} is the last queue this worker consumes from"}
    steering.change(queues=queues)
    info.queues = queues
    return {"ok": f"no longer consuming from {queue}"}


HANDLERS: dict[str, Callable[..., Any]] = {
    "ping": lambda info, **_: {"ok": "pong"},
    "active": lambda info, safe=None, **_: active(info),
    "reserved": lambda info, **_: reserved(info),
    "scheduled": lambda info, **_: scheduled(info),
    "revoked": lambda info, **_: revoked(info),
    "revoke": revoke,
    "registered": lambda info, taskinfoitems=None, **_: sorted(info.app.tasks),
    "stats": lambda info, **_: stats(info),
    "active_queues": lambda info, **_: active_queues(info),
    "conf": conf,
    "clock": lambda info, **_: {"clock": info.clock()},
    "report": lambda info, **_: {"ok": f"taskq {SOFTWARE['sw_ver']} {info.hostname}"},
    "shutdown": shutdown,
    "pool_grow": pool_grow,
    "pool_shrink": pool_shrink,
    "rate_limit": rate_limit,
    "add_consumer": add_consumer,
    "cancel_consumer": cancel_consumer,
}


def handle(info: WorkerInfo, method: str, arguments: dict[str, Any]) -> Any:
    handler = HANDLERS.get(method)
    if handler is None:
        return {"error": f"No such command: {method}"}
    try:
        return handler(info, **arguments)
    except TypeError as exc:  # arguments the command does not take
        return {"error": f"{method}: {exc}"}
