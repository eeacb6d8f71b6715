"""HTML built from templates where every value is escaped unless it is already Safe markup.

Values shown on the dashboard come from task messages and events: anyone who can send a
task can put ``<script>`` in an argument. ``render`` escapes each value it fills in (quotes
too, so values are safe inside attributes); only the output of ``render`` itself, ``join``
and ``sparkline`` is Safe. There is no way to mark an arbitrary string Safe but this module.
"""

from __future__ import annotations

import html
from collections.abc import Iterable
from typing import Any
from urllib.parse import quote


class Safe(str):
    """Markup that was escaped already (made only by this module)."""

    __slots__ = ()


def esc(value: Any) -> Safe:
    if isinstance(value, Safe):
        return value
    return Safe(html.escape("" if value is None else str(value), quote=True))


def render(template: str, **values: Any) -> Safe:
    """``template`` (a literal in our code) with each ``{name}`` filled with the escaped value."""
    return Safe(template.format(**{key: esc(value) for key, value in values.items()}))


def join(parts: Iterable[Safe], separator: str = "") -> Safe:
    return Safe(separator.join(esc(part) for part in parts))


def path_part(value: str) -> str:
    """A value put into a URL path (a task id): percent-encoded, then escaped by ``render``."""
    return quote(value, safe="")


def sparkline(series: Iterable[Iterable[int]], width: int = 120, height: int = 22) -> Safe:
    """An inline SVG with one polyline per series (numbers only: nothing to escape)."""
    lines = [list(s) for s in series]
    top = max([1, *(max(s, default=0) for s in lines)])
    shapes = []
    for index, values in enumerate(lines):
        if len(values) < 2:
            continue
        step = width / (len(values) - 1)
        points = " ".join(
            f"{i * step:.1f},{height - 1 - (v / top) * (height - 2):.1f}" for i, v in enumerate(values)
        )
        shapes.append(f'<polyline class="series-{index}" points="{points}"/>')
    return Safe(
        f'<svg class="spark" width="{width}" height="{height}" viewBox="0 0 {width} {height}" '
        f'role="img" aria-label="rate, last minute">{"".join(shapes)}</svg>'
    )
