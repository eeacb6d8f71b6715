"""Canvas: signatures, chain, group, chord and callbacks, in Celery's wire form.

signature.py (one call as data), primitives.py (chain, group, chord), results.py
(GroupResult), embed.py (send options -> message fields), ids.py (step ids), builtins.py
(map, starmap, chunks), steps.py and chords.py (what a worker does after a task finishes).
"""

from taskq.canvas.primitives import chain, chord, group
from taskq.canvas.results import GroupResult
from taskq.canvas.signature import Signature, signature

__all__ = ["GroupResult", "Signature", "chain", "chord", "group", "signature"]
