"""Canvas: signatures, chain, group, chord and callbacks, in Celery's wire form.

signatures.py (one call as data), primitives.py (chain, group, chord), results.py
(GroupResult), mapping.py (map, starmap, chunks), embed.py (send options -> message fields),
builtins.py (Celery's builtin tasks), ids.py (step ids), steps.py and chords.py (what a worker
does after a task finishes).

The names below are imported on first use: the app imports embed.py and builtins.py, which
sit under it, and the rest of the canvas sits above the app and result.py.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from taskq.canvas.primitives import chain, chord, group
    from taskq.canvas.results import GroupResult
    from taskq.canvas.signatures import Signature, signature

_WHERE = {
    "chain": "primitives", "chord": "primitives", "group": "primitives", "GroupResult": "results",
    "Signature": "signatures", "signature": "signatures",
}
__all__ = ["GroupResult", "Signature", "chain", "chord", "group", "signature"]


def __getattr__(name: str) -> Any:
    if name not in _WHERE:
        raise AttributeError(f"module 'taskq.canvas' has no attribute {name!r}")
    return getattr(importlib.import_module(f"taskq.canvas.{_WHERE[name]}"), name)
