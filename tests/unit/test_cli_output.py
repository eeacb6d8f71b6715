"""taskq/cli/output.py: tables on a terminal (rich, or plain without it), tab-separated lines
when piped, JSON lines with --json, and progress bars only on a terminal."""

from __future__ import annotations

import json
import sys
from typing import Any

import click
import pytest
from click.testing import CliRunner

from taskq.cli import output
from taskq.cli.output import Column, json_option, progress, show_table

COLUMNS = (Column("name", "name"), Column("count", "count", "right"), Column("note", "note"))
ROWS = [
    {"name": "celery", "count": 7, "note": "[bold]not markup[/bold]"},
    {"name": "evil\x1b[31m\n", "count": 12345, "note": None},
]


@click.command()
@json_option
def listing(as_json: bool) -> None:
    show_table(COLUMNS, ROWS, as_json)


def run(terminal: bool, monkeypatch: pytest.MonkeyPatch, *args: str) -> str:
    monkeypatch.setattr(output, "is_terminal", lambda stream: terminal)
    result = CliRunner().invoke(listing, list(args))
    assert result.exit_code == 0, result.output
    return result.output


def test_piped_rows_are_tab_separated_lines_without_header_or_escapes(monkeypatch: pytest.MonkeyPatch) -> None:
    assert run(False, monkeypatch).splitlines() == [
        "celery\t7\t[bold]not markup[/bold]",
        "evil\\x1b[31m\\n\t12345\t-",
    ]


def test_json_is_one_object_per_row_with_numbers_kept(monkeypatch: pytest.MonkeyPatch) -> None:
    for terminal in (False, True):
        lines = run(terminal, monkeypatch, "--json").splitlines()
        assert [json.loads(line) for line in lines] == ROWS


def test_a_terminal_gets_a_rich_table_with_values_shown_literally(monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("rich")
    text = run(True, monkeypatch)
    header = next(line for line in text.splitlines() if "name" in line)
    assert header.split() == ["name", "count", "note"]
    assert "[bold]not markup[/bold]" in text and "evil\\x1b[31m\\n" in text and "\x1b[31m" not in text
    count_end = header.index("count") + len("count")
    row = next(line for line in text.splitlines() if line.strip().startswith("celery"))
    assert row[:count_end].rstrip().endswith("7") and row[count_end - 1] == "7"  # numbers right-aligned


def test_a_terminal_without_rich_gets_a_plain_aligned_table(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(output, "_rich", lambda: None)
    assert run(True, monkeypatch).splitlines() == [
        "name            count  note",
        "celery              7  [bold]not markup[/bold]",
        "evil\\x1b[31m\\n  12345  -",
    ]


def test_progress_draws_on_a_terminal_only(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    # (click's bar, used without rich, checks the terminal itself: test_cli_output.py in
    # tests/integration runs it in a pseudo-terminal)
    pytest.importorskip("rich")
    counted: list[int] = []

    def total() -> int:
        counted.append(1)
        return 10

    monkeypatch.setattr(output, "is_terminal", lambda stream: False)
    with progress(total, "moving") as advance:
        advance(10)
    assert counted == [] and capsys.readouterr().err == ""  # piped: not even counted
    monkeypatch.setattr(output, "is_terminal", lambda stream: stream is sys.stderr)
    with progress(total, "moving") as advance:
        advance(4)
        advance(6)
    err = capsys.readouterr().err
    assert counted == [1] and "moving" in err and "100%" in err


def test_rows_must_hold_every_column() -> None:
    bad: list[dict[str, Any]] = [{"name": "x"}]
    with pytest.raises(KeyError):
        show_table(COLUMNS, bad, as_json=True)


def test_inspect_prints_list_replies_and_ping_as_listings_and_stats_as_blocks(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from taskq.cli.inspect import show

    monkeypatch.setattr(output, "is_terminal", lambda stream: False)
    active = {
        "w2@h": [{"id": "t2", "name": "m.slow", "args": [1], "kwargs": {}, "time_start": 5.0}],
        "w1@h": [{"id": "t1", "name": "m.add", "args": [1, 2], "kwargs": {"k": 3}, "time_start": 4.0}],
    }
    show(active, False, "active")
    out, err = capsys.readouterr()
    assert out.splitlines() == ["w1@h\tt1\tm.add\t[1, 2] {'k': 3}\t4.0", "w2@h\tt2\tm.slow\t[1] {}\t5.0"]
    assert err == "2 node(s) online.\n"
    show({"w1@h": {"ok": "pong"}}, False, "ping")
    assert capsys.readouterr().out == "w1@h\tpong\n"
    show({"w1@h": [{"name": "celery", "exchange": "celery"}]}, False, "active_queues")
    assert capsys.readouterr().out == "w1@h\tcelery\n"
    show({"w1@h": {"pid": 7}}, False, "stats")  # nested: Celery's block per worker
    assert capsys.readouterr().out.splitlines()[:2] == ["-> w1@h: OK", "    {"]
    show({"w1@h": {"error": "No such command"}}, False, "registered")  # an error reply is no list
    assert capsys.readouterr().out.splitlines()[:2] == ["-> w1@h: ERROR", "    No such command"]
