"""The scrape's sum over the processes' metric files survives a file being created."""

from __future__ import annotations

import struct
from pathlib import Path

import pytest

pytest.importorskip("prometheus_client")


def test_a_file_a_process_is_creating_is_left_out_of_the_scrape(tmp_path: Path) -> None:
    from prometheus_client.multiprocess import MultiProcessCollector

    from taskq.metrics import ProcessFilesCollector

    # Given a child's metrics file that exists but is not sized yet (the instant after open())
    being_made = tmp_path / "counter_4242.db"
    being_made.write_bytes(b"")
    # prometheus_client's own collector fails the whole scrape on it
    with pytest.raises(struct.error):
        MultiProcessCollector.merge([str(being_made)], accumulate=True)
    # Then ours leaves it out and answers
    assert list(ProcessFilesCollector(str(tmp_path)).collect()) == []
