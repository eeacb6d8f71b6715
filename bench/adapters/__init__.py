"""Adapters by library name, imported on first use so a missing peer only skips its column."""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from bench.adapters.base import Adapter

# name -> "module:Class"; the order is the table's column order.
ADAPTERS = {
    "taskq": "bench.adapters.taskq:TaskqAdapter",
    "raw": "bench.adapters.raw:RawAdapter",
    "celery": "bench.adapters.celery:CeleryAdapter",
    "dramatiq": "bench.adapters.dramatiq:DramatiqAdapter",
    "rq": "bench.adapters.rq:RQAdapter",
    "huey": "bench.adapters.huey:HueyAdapter",
    "arq": "bench.adapters.arq:ArqAdapter",
    "taskiq": "bench.adapters.taskiq:TaskiqAdapter",
}


def load(name: str) -> Adapter | str:
    """The adapter for ``name``, or the reason it cannot run here."""
    module_name, _, class_name = ADAPTERS[name].partition(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        return f"not installed ({exc.name or exc})"
    cls: type[Adapter] = getattr(module, class_name)
    reason = cls.unavailable()
    if reason:
        return reason
    return cls()
