"""Chord counting on every result backend: one atomic step per header task, idempotent per
task id, parts read back in header order; concurrent reports count each task once."""

from __future__ import annotations

import threading
import uuid

from taskq.backends.base import ChordPart, ResultBackend


def test_each_task_counts_once_and_parts_come_back_in_order(backend: ResultBackend) -> None:
    group_id = uuid.uuid4().hex
    assert backend.supports_chords
    assert backend.chord_add(group_id, ChordPart(2, "c", "SUCCESS", 30)) == 1
    assert backend.chord_add(group_id, ChordPart(0, "a", "SUCCESS", {"x": [1]})) == 2
    # the same task reported again (a redelivered header task) changes nothing
    assert backend.chord_add(group_id, ChordPart(0, "a", "SUCCESS", "other")) == 2
    assert backend.chord_add(group_id, ChordPart(1, "b", "FAILURE", {"exc_type": "ValueError"})) == 3
    parts = backend.chord_parts(group_id)
    assert [(p.index, p.task_id, p.state, p.result) for p in parts] == [
        (0, "a", "SUCCESS", {"x": [1]}),
        (1, "b", "FAILURE", {"exc_type": "ValueError"}),
        (2, "c", "SUCCESS", 30),
    ]
    backend.chord_forget(group_id)
    assert backend.chord_parts(group_id) == []


def test_concurrent_reports_reach_the_size_exactly_once(backend: ResultBackend) -> None:
    group_id = uuid.uuid4().hex
    size, counts = 40, []
    lock = threading.Lock()

    def report(start: int) -> None:
        for i in range(start, size, 4):
            for _ in range(2):  # every task reported twice, as by a redelivery
                n = backend.chord_add(group_id, ChordPart(i, f"t{i}", "SUCCESS", i))
                with lock:
                    counts.append(n)

    threads = [threading.Thread(target=report, args=(s,)) for s in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert max(counts) == size
    assert [p.result for p in backend.chord_parts(group_id)] == list(range(size))
    backend.chord_forget(group_id)


def test_group_documents_and_chord_size(backend: ResultBackend) -> None:
    group_id = uuid.uuid4().hex
    assert backend.restore_group(group_id) is None and backend.chord_size(group_id) is None
    backend.save_group(group_id, {"result": [[group_id, None], [[["a", None], None]]]})
    assert backend.restore_group(group_id) == {"result": [[group_id, None], [[["a", None], None]]]}
    backend.set_chord_size(group_id, 7)
    assert backend.chord_size(group_id) == 7
    backend.forget_group(group_id)
    assert backend.restore_group(group_id) is None
