"""The commands a worker answers, with Celery's names, arguments and reply shapes
(celery/worker/control.py), so ``celery inspect``/``celery control`` and Flower read them.

A handler returns the reply's value for this worker; an unknown or unsupported command
returns ``{"error": ...}`` as Celery's own workers do."""

from __future__ import annotations

import os
import platform
import resource
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from taskq.control.stats import SharedStats
from taskq.display import redact
from taskq.errors import TaskQError

if TYPE_CHECKING:
    from taskq.app import TaskQ


def taskq_version() -> str:
    # The package's own constant: importlib.metadata cost every worker ~30 ms to import and
    # search the installed distributions (issue 22, start-up time).
    import taskq

    return taskq.__version__


SOFTWARE = {"sw_ident": "taskq", "sw_ver": taskq_version(), "sw_sys": platform.system()}
NOT_YET = "is not supported by taskq workers yet"


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
    worker_pid: int = field(default_factory=os.getppid)  # the pool's process (the monitor's parent)
    started: float = field(default_factory=time.monotonic)
    clock: Callable[[], int] = lambda: 0


def active(info: WorkerInfo) -> list[dict[str, Any]]:
    """Celery's request dicts (Request.info): what Flower and ``celery inspect active`` print."""
    out = []
    for run in info.stats.active():
        queue = run.get("queue") or ""
        out.append({
            "id": run.get("id"), "name": run.get("name"), "args": run.get("args"), "kwargs": run.get("kwargs"),
            "type": run.get("name"), "hostname": info.hostname, "time_start": run.get("time_start"),
            "acknowledged": False, "delivery_info": {
                "exchange": "", "routing_key": queue, "priority": run.get("priority", 0), "redelivered": False,
            }, "worker_pid": run.get("worker_pid"),
        })
    return out


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


def unsupported(name: str) -> Callable[..., dict[str, str]]:
    def handler(info: WorkerInfo, **_: Any) -> dict[str, str]:
        return {"error": f"{name} {NOT_YET}"}

    return handler


HANDLERS: dict[str, Callable[..., Any]] = {
    "ping": lambda info, **_: {"ok": "pong"},
    "active": lambda info, safe=None, **_: active(info),
    "reserved": lambda info, **_: [],
    "scheduled": lambda info, **_: [],
    "revoked": lambda info, **_: revoked(info),
    "revoke": revoke,
    "registered": lambda info, taskinfoitems=None, **_: sorted(info.app.tasks),
    "stats": lambda info, **_: stats(info),
    "active_queues": lambda info, **_: active_queues(info),
    "conf": conf,
    "clock": lambda info, **_: {"clock": info.clock()},
    "report": lambda info, **_: {"ok": f"taskq {SOFTWARE['sw_ver']} {info.hostname}"},
    "shutdown": shutdown,
    "pool_grow": unsupported("pool_grow"),
    "pool_shrink": unsupported("pool_shrink"),
    "rate_limit": unsupported("rate_limit"),
    "add_consumer": unsupported("add_consumer"),
    "cancel_consumer": unsupported("cancel_consumer"),
}


def handle(info: WorkerInfo, method: str, arguments: dict[str, Any]) -> Any:
    handler = HANDLERS.get(method)
    if handler is None:
        return {"error": f"No such command: {method}"}
    try:
        return handler(info, **arguments)
    except TypeError as exc:  # arguments the command does not take
        return {"error": f"{method}: {exc}"}
