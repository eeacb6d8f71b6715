"""The README's first command: `taskq demo` runs end to end on embedded SQLite and exits 0."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path


def test_demo_runs_every_step_and_exits_zero(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TASKQ_")}
    proc = subprocess.run(
        [sys.executable, "-m", "taskq", "demo", "--db", str(tmp_path / "demo.db")],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    out = proc.stdout
    assert "add(2, 3)                  -> 5" in out
    assert "-> 49" in out and "succeeded on attempt 3" in out and "sum 9900" in out
    assert "ZeroDivisionError" in out and "(FAILURE)" in out
    assert "ran 3 times" in out or "ran 4 times" in out
    assert "Traceback" not in proc.stderr
