"""``taskq beat`` / ``taskq schedule`` on bad input: one line, non-zero exit, no traceback."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def run(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TASKQ_")}
    env["PYTHONPATH"] = os.pathsep.join([str(REPO), str(tmp_path)])
    env["TASKQ_BROKER_URL"] = f"sqlite:///{tmp_path}/b.db"
    return subprocess.run(
        [sys.executable, "-m", "taskq.beat.cli", *args],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


def assert_one_line_error(result: subprocess.CompletedProcess[str], text: str) -> None:
    assert result.returncode == 2, result
    assert "Traceback" not in result.stderr
    assert text in result.stderr, result.stderr


def test_unknown_app_module(tmp_path: Path) -> None:
    assert_one_line_error(run(tmp_path, "beat", "-A", "nosuchmodule:app"), "no module named 'nosuchmodule'")


def test_bad_schedule_in_the_app_fails_at_start_naming_the_field(tmp_path: Path) -> None:
    (tmp_path / "badapp.py").write_text(
        "from taskq import TaskQ\n"
        "app = TaskQ('badapp')\n"
        "app.conf.beat_schedule = {'x': {'task': 't', 'schedule': '* 25 * * *'}}\n"
    )
    assert_one_line_error(run(tmp_path, "beat", "-A", "badapp:app"), "cron hour='25': 25 is out of range 0-23")


def test_schedule_add_with_a_bad_cron_names_the_field(tmp_path: Path) -> None:
    (tmp_path / "okapp.py").write_text("from taskq import TaskQ\napp = TaskQ('okapp')\n")
    result = run(tmp_path, "schedule", "add", "-A", "okapp:app", "e", "okapp.t", "--cron", "*/0 * * * *")
    assert_one_line_error(result, "cron minute='*/0': step '0' must be a positive integer")
    both = run(tmp_path, "schedule", "add", "-A", "okapp:app", "e", "okapp.t")
    assert both.returncode == 2 and "exactly one of --every" in both.stderr
    missing = run(tmp_path, "schedule", "pause", "-A", "okapp:app", "nope")
    assert_one_line_error(missing, "No job by the id of nope")
