"""The results as one markdown table (medians, min-max over runs) and a PNG chart."""

from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path

from bench.measure import median
from bench.results import ROW_BY_KEY, ROWS, Results

PEER_EXCLUDED = ("taskq", "raw")  # taskq is compared with the peers; raw is the floor
CHART_ROWS = ["enqueue_one", "enqueue_bulk", "drain", "drain_results", "latency_p99", "rss", "pss", "memory_keys"]


def fmt(value: float, unit: str) -> str:
    if math.isnan(value):
        return "n/a"
    if unit == "trips" or (unit == "calls/s" and value < 10):  # calls/s: 0.9 against a bound of 1
        return f"{value:.2f}"
    if unit == "ms":
        return f"{value:.2f}" if value < 10 else f"{value:.1f}"
    return f"{value:,.0f}"


def cell(results: Results, row: str, library: str) -> str:
    values = results.values(row, library)
    error = results.error(row, library)
    if not values:
        return "error¹" if error else "—"
    unit = ROW_BY_KEY[row].unit
    text = fmt(median(values), unit)
    if len(values) > 1:
        text += f" ({fmt(min(values), unit)}-{fmt(max(values), unit)})"
    return text + ("¹" if error else "")


def advantage(results: Results, row: str) -> str:
    """How far taskq is ahead of the best peer (>1 ahead, <1 behind), on medians."""
    spec = ROW_BY_KEY[row]
    ours = median(results.values(row, "taskq"))
    peers = [median(results.values(row, lib)) for lib in results.libraries if lib not in PEER_EXCLUDED]
    peers = [p for p in peers if not math.isnan(p)]
    if math.isnan(ours) or not peers or ours == 0:
        return "—"
    best = max(peers) if spec.higher_is_better else min(peers)
    ratio = ours / best if spec.higher_is_better else best / ours
    return f"{ratio:.2f}x"


def of_raw(results: Results, row: str) -> str:
    ours = median(results.values(row, "taskq"))
    raw = median(results.values(row, "raw"))
    if math.isnan(ours) or math.isnan(raw) or raw == 0 or not ROW_BY_KEY[row].higher_is_better:
        return "—"
    return f"{100 * ours / raw:.0f}%"


def markdown(results: Results) -> str:
    libs = results.libraries
    header = ["row", "unit", *libs, "taskq vs best peer", "taskq % of raw"]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines.append("| status | | " + " | ".join(results.status.get(lib, "") for lib in libs) + " | | |")
    for row in ROWS:
        if not any(results.values(row.key, lib) or results.error(row.key, lib) for lib in libs):
            continue
        cells = [cell(results, row.key, lib) for lib in libs]
        lines.append(
            f"| {row.label} | {row.unit} | " + " | ".join(cells) + f" | {advantage(results, row.key)} | "
            f"{of_raw(results, row.key)} |"
        )
    errors = sorted({f"{lib}: {msg}" for row in results.errors.values() for lib, msg in row.items()})
    footer = ["", "Cells: median (min-max) over runs. taskq vs best peer: >1x means taskq is ahead."]
    footer += [f"- {note}" for note in results.notes]
    if errors:
        footer.append("¹ failed in at least one run: " + "; ".join(errors))
    return "\n".join(lines + footer) + "\n"


def chart(results: Results, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = [r for r in CHART_ROWS if any(results.values(r, lib) for lib in results.libraries)]
    if not rows:
        return
    columns = 4
    lines = math.ceil(len(rows) / columns)
    fig, axes = plt.subplots(lines, columns, figsize=(5 * columns, 4 * lines), squeeze=False)
    for ax, key in zip(axes.flat, rows, strict=False):
        spec = ROW_BY_KEY[key]
        libs = [lib for lib in results.libraries if results.values(key, lib)]
        mids = [median(results.values(key, lib)) for lib in libs]
        lows = [m - min(results.values(key, lib)) for m, lib in zip(mids, libs, strict=True)]
        highs = [max(results.values(key, lib)) - m for m, lib in zip(mids, libs, strict=True)]
        colors = ["tab:green" if lib == "taskq" else "tab:gray" if lib == "raw" else "tab:blue" for lib in libs]
        ax.bar(libs, mids, yerr=[lows, highs], color=colors, capsize=3)
        positive = [m for m in mids if m > 0]
        if positive and max(positive) / min(positive) > 50:
            ax.set_yscale("log")  # peers differ by orders of magnitude; linear bars hide most
        ax.set_title(f"{spec.label}\n({spec.unit}, {'higher' if spec.higher_is_better else 'lower'} is better)")
        ax.tick_params(axis="x", rotation=45)
    for ax in list(axes.flat)[len(rows) :]:
        ax.axis("off")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def publish(results: Results, out: Path, name: str) -> str:
    """Print the markdown table and write it beside the raw figures: ``out/name.{md,json}``."""
    table = markdown(results)
    print(table)
    out.mkdir(parents=True, exist_ok=True)
    (out / f"{name}.md").write_text(table)
    (out / f"{name}.json").write_text(json.dumps(dataclasses.asdict(results), indent=1))
    return table
