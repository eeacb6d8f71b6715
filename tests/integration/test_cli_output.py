"""The listing commands and the long ones as a user sees them: in a real pseudo-terminal
(tables, progress bars; with rich and without it) and piped (tab-separated lines, --json)."""

from __future__ import annotations

import json
import os
import pty
import re
import select
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from taskq import TaskQ
from tests.integration.test_cli import assert_one_line_error, taskq
from tests.integration.test_cli_brokers import dead_letter
from tests.integration.workers import PROJECT

A = ("-A", "example_tasks:app")
ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


def in_terminal(env: dict[str, str], *args: str, without_rich: Path | None = None) -> str:
    """Run ``taskq ARGS`` with stdout and stderr on a pseudo-terminal; return what it showed."""
    env = {**env, "TERM": "xterm", "COLUMNS": "160"}
    if without_rich is not None:  # a package named rich that cannot be imported shadows the real one
        env["PYTHONPATH"] = os.pathsep.join([str(without_rich), env.get("PYTHONPATH", "")])
    leader, follower = pty.openpty()
    try:
        proc = subprocess.Popen(
            [sys.executable, "-m", "taskq", *args], cwd=PROJECT, env=env, stdin=subprocess.DEVNULL,
            stdout=follower, stderr=follower,
        )
        os.close(follower)
        chunks = []
        deadline = time.monotonic() + 60
        while True:
            ready, _, _ = select.select([leader], [], [], max(deadline - time.monotonic(), 0))
            if not ready:
                proc.kill()
                raise AssertionError(f"taskq {' '.join(args)} did not finish within 60s")
            try:
                chunk = os.read(leader, 65536)
            except OSError:  # EIO: the child closed the terminal
                break
            if not chunk:
                break
            chunks.append(chunk)
        assert proc.wait(timeout=60) == 0, b"".join(chunks).decode(errors="replace")
    finally:
        os.close(leader)
    shown = b"".join(chunks).decode(errors="replace").replace("\r\n", "\n")
    return ANSI.sub("", shown)  # styles (bold headers) and cursor moves of the progress bar


@pytest.fixture
def no_rich(tmp_path: Path) -> Path:
    folder = tmp_path / "no-rich"
    (folder / "rich").mkdir(parents=True)
    (folder / "rich" / "__init__.py").write_text("raise ImportError('rich is not installed here')\n")
    return folder


@pytest.fixture
def producer(broker_env: dict[str, str]) -> Iterator[TaskQ]:
    app = TaskQ("cli-output")
    try:
        yield app
    finally:
        app.close()


def test_queues_table_on_a_terminal_lines_when_piped_and_json(
    broker_env: dict[str, str], producer: TaskQ, no_rich: Path
) -> None:
    pytest.importorskip("rich")
    for i in range(3):
        producer.send_task("example_tasks.add", (i, i))
    producer.send_task("example_tasks.add", (1, 1), queue="other-queue")
    dead_letter(producer, "dead-1", {})
    # Piped: one tab-separated line per queue, no header
    piped = taskq("queues", *A, env=broker_env)
    assert piped.returncode == 0, piped.stderr
    assert piped.stdout.splitlines() == ["celery\t3\t1", "other-queue\t1\t0"]
    as_json = taskq("queues", *A, "--json", env=broker_env).stdout.splitlines()
    assert [json.loads(line) for line in as_json] == [
        {"queue": "celery", "messages": 3, "dead": 1}, {"queue": "other-queue", "messages": 1, "dead": 0}
    ]
    # A terminal: a table with a header, drawn by rich (a rule under the header) or plain
    shown = in_terminal(broker_env, "queues", *A)
    lines = [line.rstrip() for line in shown.splitlines() if line.strip()]
    assert lines[0].split() == ["queue", "messages", "dead"] and set(lines[1].strip()) <= {"─", " "}
    assert lines[2].split() == ["celery", "3", "1"] and "\t" not in shown
    plain = [line for line in in_terminal(broker_env, "queues", *A, without_rich=no_rich).splitlines() if line]
    assert plain == ["queue        messages  dead", "celery              3     1", "other-queue         1     0"]


def test_dead_letters_list_as_table_lines_and_json(broker_env: dict[str, str], producer: TaskQ) -> None:
    dead_letter(producer, "dead-1", {})
    [line] = taskq("dead-letters", "list", *A, env=broker_env).stdout.splitlines()
    assert line.split("\t")[:2] == ["dead-1", "celery"] and line.endswith("\tpoison dead-1")
    [row] = [json.loads(x) for x in taskq("dead-letters", "list", *A, "--json", env=broker_env).stdout.splitlines()]
    assert row["id"] == "dead-1" and row["queue"] == "celery" and row["reason"] == "poison dead-1"
    assert row["failed_at"].endswith("+00:00")
    shown = in_terminal(broker_env, "dead-letters", "list", *A)
    assert "failed at" in shown and "poison dead-1" in shown


def test_purge_and_requeue_show_a_bar_on_a_terminal_only(
    broker_env: dict[str, str], producer: TaskQ, no_rich: Path
) -> None:
    pytest.importorskip("rich")
    dead_letter(producer, "dead-1", {})  # (first: the helper fetches a few messages to find its own)
    dead_letter(producer, "dead-2", {})
    producer.send_many("example_tasks.add", [((i, i), {}) for i in range(50)])
    requeued = in_terminal(broker_env, "dead-letters", "requeue", *A)
    assert "requeuing" in requeued and "100%" in requeued and "requeued 2 message(s)" in requeued
    purged = in_terminal(broker_env, "purge", *A, "-f", without_rich=no_rich)  # click's own bar
    assert "purging" in purged and "100%" in purged and "purged 52 message(s)" in purged
    producer.send_task("example_tasks.add", (1, 2))
    piped = taskq("purge", *A, "-f", env=broker_env)
    assert piped.stdout == "purged 1 message(s)\n" and piped.stderr == ""


def test_call_from_file_sends_every_line_in_bulk(broker_env: dict[str, str], producer: TaskQ, tmp_path: Path) -> None:
    calls = tmp_path / "calls.jsonl"
    lines = [json.dumps([i, i]) if i % 2 else json.dumps({"args": [i], "kwargs": {"b": 1}}) for i in range(2500)]
    calls.write_text("\n".join(lines[:10]) + "\n\n" + "\n".join(lines[10:]) + "\n")
    sent = taskq("call", *A, "example_tasks.add", "--from-file", str(calls), "--priority", "3", env=broker_env)
    assert sent.returncode == 0 and sent.stderr == "", sent.stderr
    ids = sent.stdout.split()
    assert len(ids) == len(set(ids)) == 2500
    assert producer.broker.queue_length("celery") == 2500
    first = producer.broker.fetch(["celery"], 2, timeout=5)
    bodies = sorted(json.loads(d.envelope.body)[:2] for d in first if d.envelope is not None)
    assert bodies == [[[0], {"b": 1}], [[1, 1], {}]] and {d.envelope and d.envelope.priority for d in first} == {3}
    # From stdin, on a terminal: a bar while it sends
    shown = in_terminal(broker_env, "call", *A, "example_tasks.add", "--from-file", str(calls))
    assert "sending 2500 call(s)" in shown and "100%" in shown
    assert producer.broker.queue_length("celery") == 5000
    piped = taskq("call", *A, "example_tasks.add", "--from-file", "-", env=broker_env, input="[1, 2]\n")
    assert len(piped.stdout.split()) == 1 and producer.broker.queue_length("celery") == 5001


@pytest.mark.parametrize(
    ("content", "extra", "text"),
    [
        ("[1, 2]\n[1, 2\n", (), "--from-file line 2 is not valid JSON"),
        ("[1, 2]\n7\n", (), "--from-file line 2 must be a JSON array or object"),
        ('{"args": [1], "kw": {}}\n', (), "--from-file line 1: unknown key(s) kw"),
        ('{"args": {"a": 1}}\n', (), "args must be a JSON array and kwargs a JSON object"),
        ("[1, 2]\n", ("--args", "[1, 2]"), "no --args, --kwargs or --wait with it"),
    ],
)
def test_call_from_file_bad_input_sends_nothing(
    broker_env: dict[str, str], producer: TaskQ, tmp_path: Path, content: str, extra: tuple[str, ...], text: str
) -> None:
    calls = tmp_path / "calls.jsonl"
    calls.write_text(content)
    proc = taskq("call", *A, "example_tasks.add", "--from-file", str(calls), *extra, env=broker_env)
    assert_one_line_error(proc, text)
    assert producer.broker.queue_length("celery") == 0


def test_schedule_list_is_a_table_on_a_terminal(broker_env: dict[str, str]) -> None:
    added = taskq("schedule", "add", *A, "nightly", "example_tasks.add", "--every", "60", env=broker_env)
    assert added.returncode == 0, added.stderr
    piped = taskq("schedule", "list", *A, env=broker_env).stdout
    assert piped.startswith("nightly\texample_tasks.add\t")
    shown = in_terminal(broker_env, "schedule", "list", *A)
    header = next(line for line in shown.splitlines() if line.strip())
    assert header.split() == ["id", "task", "schedule", "next", "run", "status", "source"]
    assert "nightly" in shown and "\t" not in shown
