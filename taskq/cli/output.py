"""Output of the listing commands and progress of the long ones, one helper for all.

Every listing prints through ``show_table``:

* ``--json`` (``json_option``): one JSON object per row, keys from the columns, values as
  they are (numbers stay numbers); nothing else on stdout;
* stdout a terminal: an aligned table with a header (rich's when rich is installed, else
  plain text padded with spaces);
* stdout piped: one line per row, fields separated by tabs, no header, no colour, so
  ``cut -f`` and ``awk -F'\\t'`` read it.

Every text cell goes through ``printable`` (values come from messages: a task id must not
recolour a terminal). ``progress`` draws a bar on stderr when stderr is a terminal, else
nothing. rich is optional (``pip install taskq[rich]``).
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Literal, TypeVar

import click

from taskq.display import printable

F = TypeVar("F", bound=Callable[..., Any])


@dataclass(frozen=True)
class Column:
    """One column: ``key`` of the row mapping (and of the JSON object), its header, alignment."""

    key: str
    header: str
    align: Literal["left", "right"] = "left"


def json_option(fn: F) -> F:
    return click.option("--json", "as_json", is_flag=True, help="One JSON object per line")(fn)


def is_terminal(stream: Any) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):  # closed or replaced streams
        return False


def _rich() -> Any:
    try:
        import rich.box
        import rich.console
        import rich.table
        import rich.text
    except ImportError:
        return None
    return rich


def show_table(columns: Sequence[Column], rows: Sequence[Mapping[str, Any]], as_json: bool = False) -> None:
    """Print ``rows`` (mappings holding every column's key) as the stream calls for."""
    if as_json:
        for row in rows:
            click.echo(json.dumps({c.key: row[c.key] for c in columns}, default=str))
        return
    cells = [[_cell(row[c.key]) for c in columns] for row in rows]
    if not is_terminal(sys.stdout):
        for line in cells:
            click.echo("\t".join(line))
        return
    rich = _rich()
    if rich is None:
        click.echo(plain_table(columns, cells))
        return
    table = rich.table.Table(box=rich.box.SIMPLE_HEAD, header_style="bold")
    for column in columns:
        table.add_column(column.header, justify=column.align, overflow="fold")
    for line in cells:
        table.add_row(*(rich.text.Text(cell) for cell in line))  # Text: no markup read in values
    rich.console.Console(highlight=False).print(table)


def plain_table(columns: Sequence[Column], cells: Sequence[Sequence[str]]) -> str:
    """A header and rows padded with spaces to line up (a terminal without rich)."""
    widths = [max([len(c.header), *(len(line[i]) for line in cells)]) for i, c in enumerate(columns)]

    def fmt(values: Sequence[str]) -> str:
        triples = zip(values, widths, columns, strict=True)
        padded = (v.rjust(w) if c.align == "right" else v.ljust(w) for v, w, c in triples)
        return "  ".join(padded).rstrip()

    return "\n".join([fmt([c.header for c in columns]), *(fmt(line) for line in cells)])


def _cell(value: Any) -> str:
    return "-" if value is None else printable(value)


@contextmanager
def progress(total: Callable[[], int], label: str) -> Iterator[Callable[[int], None]]:
    """A bar on stderr while the block runs, on a terminal only; yields ``advance(n)``.
    ``total`` is called only when a bar is drawn (counting may cost round trips)."""
    count = total() if is_terminal(sys.stderr) else 0
    if count <= 0:
        yield lambda n: None
        return
    rich = _rich()
    if rich is None:
        with click.progressbar(length=count, label=label, file=sys.stderr) as bar:
            yield bar.update
        return
    import rich.progress

    console = rich.console.Console(stderr=True)
    with rich.progress.Progress(*rich.progress.Progress.get_default_columns(), console=console) as bar:
        task = bar.add_task(label, total=count)
        yield lambda n: bar.advance(task, n)
