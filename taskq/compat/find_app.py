"""``-A`` as Celery reads it (celery/app/utils.py ``find_app``): ``proj`` finds ``proj.app``,
then ``proj.celery`` (the app, or the module ``proj/celery.py`` and its ``app``), then the
only app in the module; ``proj.celery:app`` and ``proj.celery.app`` name it exactly."""

from __future__ import annotations

import importlib
from types import ModuleType
from typing import Any

from taskq.app import TaskQ
from taskq.errors import ConfigurationError


def find_app(spec: str) -> TaskQ:
    found = _find(spec)
    if not isinstance(found, TaskQ):
        raise ConfigurationError(f"-A {spec!r}: no TaskQ app found there (taskq.Celery is one)")
    return found


def _find(spec: str) -> Any:
    module_name, colon, attr = spec.partition(":")
    if not module_name:
        raise ConfigurationError(f"-A {spec!r}: expected a module, module:app or module.app")
    if colon:
        return getattr(_import(spec, module_name), attr, None)
    try:
        symbol: Any = _import(spec, module_name)
    except _Missing:
        parent, _, attr = module_name.rpartition(".")  # proj.celery.app: the attribute of a module
        if not parent:
            raise
        symbol = getattr(_import(spec, parent), attr, None)
        if symbol is None:
            raise
    if not isinstance(symbol, ModuleType):
        return symbol
    for name in ("app", "celery"):
        candidate = getattr(symbol, name, None)
        if isinstance(candidate, TaskQ):
            return candidate
    if hasattr(symbol, "__path__"):  # a package: its celery.py, as Celery looks
        try:
            return _find(f"{module_name}.celery")
        except _Missing:
            pass
    apps = [value for value in vars(symbol).values() if isinstance(value, TaskQ)]
    return apps[0] if apps else None


class _Missing(ConfigurationError):
    """The module itself does not exist (not a module that failed inside)."""


def _import(spec: str, module_name: str) -> ModuleType:
    try:
        return importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name and module_name.startswith(exc.name) and (module_name + ".").startswith(exc.name + "."):
            raise _Missing(f"-A {spec!r}: no module named {exc.name!r}") from None
        raise ConfigurationError(f"-A {spec!r}: importing it failed: {exc}") from None
    except ConfigurationError:
        raise
    except Exception as exc:
        raise ConfigurationError(f"-A {spec!r}: importing it failed: {type(exc).__name__}: {exc}") from None
