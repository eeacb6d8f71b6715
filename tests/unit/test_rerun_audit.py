"""The check that no task starts again once its result is stored (tests/integration/rerun_audit.py)."""

from __future__ import annotations

from pathlib import Path

from tests.integration.rerun_audit import StoredResultsWatch, starts_after_stored
from tests.integration.workers import Marks

KILLED, LIVE = 101, 202


def test_a_task_cut_off_then_run_and_stored_elsewhere_before_the_snapshot_is_no_late_start() -> None:
    # The sequence test_workers_killed_again_and_again_lose_nothing used to fail on: c160 is
    # cut off by the first kill (no result), runs again on a live worker after the recovery
    # time and is stored; the second kill follows and only then were the results read, so c160
    # looked like a stored result that ran twice. Its second run began before any result.
    lines = [("start", "c160", KILLED), ("start", "c160", LIVE), ("done", "c160", LIVE)]
    snapshots = [(frozenset(), 1), (frozenset({"c160"}), 3)]
    assert starts_after_stored(snapshots, lines) == {}


def test_a_start_after_its_result_was_stored_is_reported_with_its_pid() -> None:
    lines = [("start", "c1", KILLED), ("done", "c1", KILLED), ("start", "c2", LIVE), ("start", "c1", LIVE)]
    snapshots = [(frozenset(), 0), (frozenset({"c1"}), 2), (frozenset({"c1", "c2"}), 4)]
    assert starts_after_stored(snapshots, lines) == {"c1": [LIVE]}


def test_the_watch_counts_only_lines_written_when_its_snapshot_was_over(tmp_path: Path) -> None:
    marks = Marks(tmp_path / "marks.log")
    marks.path.write_text("start a 1\ndone a 1\nstart b")  # the last line is still being written
    with StoredResultsWatch(lambda: {"a"}, marks, interval=0.01) as watch:
        pass
    assert watch.snapshots[-1] == (frozenset({"a"}), 2)
    marks.path.write_text("start a 1\ndone a 1\nstart b 2\nstart a 3\n")
    assert watch.starts_after_stored() == {"a": [3]}
