"""A prefork supervisor serves remote control from a thread and forks children meanwhile
(taskq/control/monitor.py): what a child shares with that thread must not come to it locked,
and the kombu the supervisor imports without its extras must serialize as kombu does."""

from __future__ import annotations

import gc
import json
import os
import subprocess
import sys
import textwrap
import threading
import time

import pytest

from taskq import TaskQ
from taskq.control.monitor import Monitor
from taskq.events.dispatcher import EventDispatcher
from taskq.worker.keeper import FORK_GUARD, fork_sharing


def child_exit_code(pid: int) -> int:
    _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status)


def holding(*locks: threading.Lock) -> tuple[threading.Event, threading.Thread]:
    """A thread that holds ``locks`` until the returned event is set."""
    held, release = threading.Event(), threading.Event()

    def hold() -> None:
        for lock in locks:
            lock.acquire()
        held.set()
        release.wait(10)
        for lock in locks:
            lock.release()

    thread = threading.Thread(target=hold, daemon=True)
    thread.start()
    assert held.wait(5)
    return release, thread


def test_a_child_forked_while_the_control_thread_sends_an_event_sends_its_own() -> None:
    # Given the dispatcher a supervisor's control thread and its children share, with its
    # locks held by another thread (the control thread in the middle of a heartbeat)
    dispatcher = EventDispatcher(TaskQ("forksafe", broker="memory://").conf, "forksafe@host")
    release, thread = holding(dispatcher._lock, dispatcher.clock._lock)
    try:
        # When the process forks
        pid = os.fork()
        if pid == 0:
            free = dispatcher._lock.acquire(timeout=2) and dispatcher.clock._lock.acquire(timeout=2)
            os._exit(0 if free else 1)
        # Then the child finds both free
        assert child_exit_code(pid) == 0
    finally:
        release.set()
        thread.join(5)


def test_fork_sharing_waits_while_a_thread_uses_what_the_children_share() -> None:
    # Given a thread holding the fork guard (a remote-control command using the app's broker)
    release, thread = holding(FORK_GUARD)
    threading.Timer(0.3, release.set).start()
    started = time.monotonic()
    try:
        # When the supervisor forks a child
        pid = fork_sharing()
        if pid == 0:
            os._exit(0 if FORK_GUARD.acquire(timeout=2) else 1)
        waited = time.monotonic() - started
        # Then the fork waited for the command to end, and the child's guard is free
        assert waited >= 0.25
        assert child_exit_code(pid) == 0
    finally:
        release.set()
        thread.join(5)
        gc.unfreeze()


ROUND_TRIP = textwrap.dedent(
    """
    import json, sys
    from taskq.sidechannel import SUPERVISOR_SKIPS, import_kombu_lean, serializers_on_first_use

    if sys.argv[1] == "lean":
        serializers_on_first_use(import_kombu_lean(SUPERVISOR_SKIPS))
    from kombu import serialization
    from kombu.exceptions import ContentDisallowed

    out = {"loaded_before": sorted(m for m in ("yaml", "msgpack", "billiard") if m in sys.modules)}
    for name in ("yaml", "msgpack"):
        content_type, encoding, body = serialization.dumps({"a": [1, "b", None]}, name)
        try:
            serialization.loads(body, content_type, encoding)
            refused = False
        except ContentDisallowed:
            refused = True
        decoded = serialization.loads(body, content_type, encoding, accept={content_type})
        out[name] = [content_type, encoding, body if isinstance(body, str) else body.hex(), decoded, refused]
    print(json.dumps(out))
    """
)


def round_trip(mode: str) -> dict[str, object]:
    done = subprocess.run(
        [sys.executable, "-c", ROUND_TRIP, mode], capture_output=True, text=True, timeout=60, check=True
    )
    result: dict[str, object] = json.loads(done.stdout)
    return result


def test_kombu_imported_lean_serializes_yaml_and_msgpack_as_kombu_does() -> None:
    pytest.importorskip("yaml")
    pytest.importorskip("msgpack")
    # Given kombu imported as a prefork supervisor imports it, and kombu imported as usual
    lean, usual = round_trip("lean"), round_trip("usual")
    # Then the lean one loaded neither library nor billiard until a message needed one
    assert lean["loaded_before"] == []
    assert usual["loaded_before"] == ["billiard", "msgpack", "yaml"]
    # And its YAML and msgpack give the same content type, encoding and bytes, decode the same,
    # and are refused the same without an accept list (kombu disables them by default)
    for name in ("yaml", "msgpack"):
        assert lean[name] == usual[name]
    assert lean["yaml"][3] == {"a": [1, "b", None]}  # type: ignore[index]


BEFORE_THE_THREAD = textwrap.dedent(
    """
    import sys
    from taskq import TaskQ
    from taskq.control.monitor import Monitor

    app = TaskQ("early", broker="redis://127.0.0.1:1/0")  # never connected: the thread does nothing
    monitor = Monitor(app, "early@host", ["celery"], "prefork", 1, 1)
    monitor.serve = monitor._tell_listening  # only start() itself counts
    before = "taskq.events.kombu_bus" in sys.modules
    monitor.start()
    print(monitor.in_thread, before, "taskq.events.kombu_bus" in sys.modules)
    """
)


def test_a_prefork_supervisor_imports_the_events_bus_before_its_pool_forks() -> None:
    # Given a prefork worker's control side on Redis, whose thread is made to do nothing
    done = subprocess.run([sys.executable, "-c", BEFORE_THE_THREAD], capture_output=True, text=True, timeout=60)
    # When it starts, Then it serves from a thread, and the events bus's module was imported by
    # start() itself, not left to the sender thread, whose import the pool's fork could cut in half
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["True", "False", "True"]


@pytest.mark.parametrize(
    ("broker", "pool", "in_thread"),
    [
        ("redis://127.0.0.1:1/0", "prefork", True),
        ("amqp://guest:guest@127.0.0.1:1//", "prefork", True),
        ("redis://127.0.0.1:1/0", "threads", False),  # tasks run in this process
        ("redis://127.0.0.1:1/0", "solo", False),
        ("sqlite:///unused.db", "prefork", False),  # SQLite's VFS mutex must not be held at a fork
        ("postgresql://u@127.0.0.1:1/db", "prefork", False),
        ("rediss://127.0.0.1:1/0", "prefork", False),  # nor OpenSSL's
        ("amqps://guest:guest@127.0.0.1:1//", "prefork", False),
        ("memory://", "threads", True),  # one process by nature
    ],
)
def test_the_control_side_is_a_thread_only_where_no_task_and_no_c_library_lock_can_be_in_the_way(
    broker: str, pool: str, in_thread: bool
) -> None:
    monitor = Monitor(TaskQ("where", broker=broker), "where@host", ["celery"], pool, 1, 1)
    assert monitor.in_thread is in_thread
