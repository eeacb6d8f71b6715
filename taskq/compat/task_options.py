"""``@app.task`` options as Celery spells them, turned into taskq's (taskq/task.py TaskOptions).

Most are the same name already (bind, name, max_retries, default_retry_delay, autoretry_for,
retry_backoff, retry_backoff_max, retry_jitter, acks_late, ignore_result, rate_limit,
time_limit, soft_time_limit, queue, priority, expires); the rest are mapped here or refused by
name, never ignored.
"""

from __future__ import annotations

from typing import Any

from taskq.errors import ConfigurationError

# Celery task options taskq does not have, with the reason.
UNSUPPORTED: dict[str, str] = {
    "base": "a custom Task class; use signals or middleware (taskq.signals) for its hooks",
    "throws": "expected exceptions are logged like any failure",
    "track_started": "set task_track_started for the app",
    "reject_on_worker_lost": "set task_reject_on_worker_lost for the app",
    "acks_on_failure_or_timeout": "a failed or timed-out task is always acked (dead-letter store)",
    "store_errors_even_if_ignored": "not supported yet",
    "send_events": "set worker_send_task_events (-E) for the worker",
    "compression": "messages are not compressed",
    "trail": "not supported yet",
    "resultrepr_maxsize": "not supported yet",
    "pydantic": "not supported yet",
    "lazy": "not supported yet",
}


def from_celery(name: str, options: dict[str, Any], app_serializer: str) -> dict[str, Any]:
    """Celery's spelling of a task's options -> taskq's; one clear error for those taskq lacks."""
    options = dict(options)
    options.pop("shared", None)  # every taskq task can be found by name from any app
    options.pop("typing", None)  # taskq does not check arguments at send time; mypy checks them (ParamSpec)
    serializer = options.pop("serializer", None)
    if serializer is not None and serializer != app_serializer:
        raise ConfigurationError(
            f"task {name}: a serializer per task is not supported (set task_serializer={serializer!r} for the app)"
        )
    retry_kwargs = options.pop("retry_kwargs", None) or {}
    if "max_retries" in retry_kwargs:
        options.setdefault("max_retries", retry_kwargs.pop("max_retries"))
    if "countdown" in retry_kwargs:
        options.setdefault("default_retry_delay", retry_kwargs.pop("countdown"))
    if retry_kwargs:
        raise ConfigurationError(
            f"task {name}: retry_kwargs takes max_retries and countdown, not {sorted(retry_kwargs)}"
        )
    for option in options:
        if option in UNSUPPORTED:
            reason = UNSUPPORTED[option]
            raise ConfigurationError(f"task {name}: Celery's task option {option}= is not supported ({reason})")
    return options
