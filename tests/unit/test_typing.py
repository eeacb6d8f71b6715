"""The typing promise, checked by mypy itself: signatures survive @app.task."""

from __future__ import annotations

import textwrap
from pathlib import Path

from mypy import api

PROGRAM = textwrap.dedent(
    """
    from taskq import TaskQ, Task

    app = TaskQ("typed", broker="memory://typed")

    @app.task
    def add(a: int, b: int) -> int:
        return a + b

    @app.task(max_retries=2)
    def shout(text: str) -> str:
        return text.upper()

    @app.task(bind=True)
    def bound(self: Task[[int], int], x: int) -> int:
        return x

    @app.task
    async def fetch(url: str) -> bytes:
        return b""

    reveal_type(add.delay(1, 2))
    reveal_type(add.delay(1, 2).get())
    reveal_type(shout.delay("a").get())
    reveal_type(fetch.delay("u").get())
    reveal_type(bound.delay(3).get())
    add.delay("x", 2)
    shout.delay(1)
    add(1)
    """
)


def test_task_signatures_are_checked_by_mypy(tmp_path: Path) -> None:
    source = tmp_path / "typed_program.py"
    source.write_text(PROGRAM)
    out, _, _ = api.run([str(source), "--no-incremental", "--show-error-codes", "--cache-dir", str(tmp_path / "c")])
    lines = out.splitlines()
    revealed = [
        line.split("Revealed type is ", 1)[1].replace("builtins.", "") for line in lines if "Revealed type" in line
    ]
    assert revealed == [
        '"taskq.result.AsyncResult[int]"',
        '"int"',
        '"str"',
        '"bytes"',
        '"int"',
    ], out
    errors = [line for line in lines if ": error:" in line]
    assert len(errors) == 3, out
    assert 'Argument 1 to "delay" of "Task" has incompatible type "str"; expected "int"' in errors[0]
    assert 'incompatible type "int"; expected "str"' in errors[1]
    assert "Missing positional argument" in errors[2]
