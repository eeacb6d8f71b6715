"""The scheduler constructor's configuration, read as APScheduler reads it: ``gconfig``
(a flat dict whose keys start with ``apscheduler.``, values possibly strings, as from an
ini file) overlaid by keyword ``options``: timezone, job_defaults, executors, jobstores.
An executor or job store is given as an instance, or a dict with ``type`` (a plugin name:
threadpool, processpool, ..., memory, sqlalchemy, ...) or ``class`` ("module:Class")."""

from __future__ import annotations

import importlib
from typing import Any

from taskq.beat.executors import BaseExecutor, create_executor
from taskq.beat.jobstores import create_jobstore
from taskq.errors import ConfigurationError

PREFIX = "apscheduler."
KNOWN_OPTIONS = frozenset({"timezone", "job_defaults", "executors", "jobstores"})
JOB_DEFAULT_KEYS = frozenset({"misfire_grace_time", "coalesce", "max_instances"})


def merge_config(gconfig: dict[str, Any] | None, options: dict[str, Any]) -> dict[str, Any]:
    config: dict[str, Any] = {}
    for key, value in (gconfig or {}).items():
        if not key.startswith(PREFIX):
            continue
        parts = key[len(PREFIX) :].split(".")
        if parts[0] in ("executors", "jobstores") and len(parts) >= 3:
            # apscheduler.executors.default.max_workers = 20 -> executors["default"]["max_workers"]
            target = config.setdefault(parts[0], {}).setdefault(parts[1], {})
            target[".".join(parts[2:])] = value
            continue
        node = config
        for part in parts[:-1]:
            node = node.setdefault(part, {})
        node[parts[-1]] = value
    for key, value in options.items():
        if isinstance(value, dict) and isinstance(config.get(key), dict):
            config[key] = {**config[key], **value}
        else:
            config[key] = value
    unknown = set(config) - KNOWN_OPTIONS
    if unknown:
        raise ConfigurationError(f"unknown scheduler option(s): {', '.join(sorted(unknown))}")
    return config


def job_defaults(raw: dict[str, Any] | None) -> dict[str, Any]:
    raw = dict(raw or {})
    unknown = set(raw) - JOB_DEFAULT_KEYS
    if unknown:
        raise ConfigurationError(f"unknown job_defaults: {', '.join(sorted(unknown))}")
    out: dict[str, Any] = {}
    if "misfire_grace_time" in raw:
        value = raw["misfire_grace_time"]
        out["misfire_grace_time"] = None if value in (None, "None", "none") else float(value)
    if "coalesce" in raw:
        out["coalesce"] = _as_bool(raw["coalesce"])
    if "max_instances" in raw:
        out["max_instances"] = int(raw["max_instances"])
    return out


def _as_bool(value: Any) -> bool:
    if isinstance(value, str):
        return value.strip().lower() in ("true", "yes", "on", "1")
    return bool(value)


def _numeric(options: dict[str, Any]) -> dict[str, Any]:
    return {key: int(value) if isinstance(value, str) and value.isdigit() else value for key, value in options.items()}


def build_plugin(value: Any, kind: str) -> Any:
    """An executor or job store from its configuration value."""
    if not isinstance(value, dict):
        return value  # an instance already
    options = _numeric(dict(value))
    if "class" in options:
        reference = str(options.pop("class"))
        module_name, sep, class_name = reference.partition(":")
        if not sep:
            module_name, _, class_name = reference.rpartition(".")
        return getattr(importlib.import_module(module_name), class_name)(**options)
    plugin = options.pop("type", None)
    if plugin is None:
        raise ConfigurationError(f"{kind} configuration {value!r} needs 'type' or 'class'")
    if kind == "executor":
        executor: BaseExecutor = create_executor(str(plugin), **options)
        return executor
    return create_jobstore(str(plugin), **options)
