"""The app ``python -m bench.startup`` starts workers of: SQLite broker and backend in a
directory the harness names (``BENCH_STARTUP_DIR``); the task notes when it ran and which
modules its process had imported."""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

from taskq import TaskQ

DIR = Path(os.environ.get("BENCH_STARTUP_DIR", "/tmp/taskq-bench-startup"))
app = TaskQ("startup", broker=f"sqlite:///{DIR}/broker.db", backend=f"sqlite:///{DIR}/results.db")


@app.task(name="bench.first")
def first() -> None:
    (DIR / "modules.txt").write_text("\n".join(sorted(sys.modules)))
    (DIR / "ran_at").write_text(repr(time.time()))  # last: the harness waits for this file
