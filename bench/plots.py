"""docs/backlog.png: drain rate against backlog size and against the number of queues, for
taskq, the raw client and the peers, drawn from the benches' JSON results.

    python -m bench.plots [--backlog FILE] [--results FILE] [--many-queues FILE] [--out PNG]

Left, from ``python -m bench.backlog`` (backlog_peers.json: the run with the peers): the drain
rate of each backlog size.
Right, from two benches: 1, 4 and 16 queues are the main bench's scaling rows (results.json:
``scale_p2``, ``scale_q4``, ``scale_q16``, one run each, 2 worker processes), solid lines;
1 and 1,000 queues, dotted, are ``python -m bench.many_queues``'s two drains (many_queues.json:
``mq_single``, ``mq_many``, medians with min-max bars, 2 worker processes), which ran at
another time, so the dotted lines are compared with each other, not with the solid ones.
Defaults: the committed files in bench/results; ``python -m bench.backlog`` redraws the plot
after each run. A file that is missing leaves its lines out.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from bench.measure import median

RESULTS_DIR = Path(__file__).resolve().parent / "results"
PLOT = Path(__file__).resolve().parents[1] / "docs" / "backlog.png"
# One colour per library in both panels; taskq drawn thicker, the raw client dashed grey.
COLORS = {
    "taskq": "tab:green", "raw": "tab:gray", "celery": "tab:blue", "dramatiq": "tab:orange", "rq": "tab:red",
    "huey": "tab:purple", "arq": "tab:brown", "taskiq": "tab:pink",
}  # fmt: skip
QUEUE_ROWS = {1: "scale_p2", 4: "scale_q4", 16: "scale_q16"}  # queue count -> main bench row
MANY_QUEUES = 1000  # bench.many_queues's default --queues (its notes say what ran)


def style(library: str) -> dict[str, Any]:
    if library == "taskq":
        return {"color": COLORS["taskq"], "linewidth": 2.5}
    if library == "raw":
        return {"color": COLORS["raw"], "linestyle": "--"}
    return {"color": COLORS.get(library, "tab:olive")}


def order(libraries: set[str]) -> list[str]:
    known = list(COLORS)
    return sorted(libraries, key=lambda lib: (known.index(lib) if lib in known else len(known), lib))


def load(path: Path | None) -> dict[str, Any] | None:
    if path is None or not path.exists():
        return None
    data: dict[str, Any] = json.loads(path.read_text())
    return data


def backlog_panel(ax: Any, backlog: dict[str, Any] | None) -> None:
    samples = backlog["samples"] if backlog else []
    for lib in order({s["library"] for s in samples}):
        sizes = sorted({s["size"] for s in samples if s["library"] == lib})
        rates = [median([s["drain"] for s in samples if s["library"] == lib and s["size"] == n]) for n in sizes]
        ax.plot(sizes, rates, marker="o", label=lib, **style(lib))
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("tasks queued before the workers start (backlog)")
    ax.set_ylabel("drain rate, 2 worker processes (tasks/s)")
    ax.set_title("vs backlog size (python -m bench.backlog)")
    ax.grid(True, which="both", alpha=0.3)
    if samples:
        ax.legend()


def queues_panel(ax: Any, results: dict[str, Any] | None, many: dict[str, Any] | None) -> None:
    scaling = results["samples"] if results else {}
    for lib in order({lib for row in QUEUE_ROWS.values() for lib in scaling.get(row, {})}):
        points = [(q, median(scaling[row][lib])) for q, row in QUEUE_ROWS.items() if scaling.get(row, {}).get(lib)]
        if len(points) < 2:  # only the adapters that can consume several queues (multi_queue) have those rows
            continue
        ax.plot([q for q, _ in points], [r for _, r in points], marker="o", label=lib, **style(lib))
    drains = many["samples"] if many else {}
    for lib in order(set(drains.get("mq_single", {})) & set(drains.get("mq_many", {}))):
        runs = [drains["mq_single"][lib], drains["mq_many"][lib]]
        mids = [median(r) for r in runs]
        pairs = list(zip(mids, runs, strict=True))
        bars = [[m - min(r) for m, r in pairs], [max(r) - m for m, r in pairs]]  # min-max of the runs
        line = {**style(lib), "linestyle": ":"}
        ax.errorbar([1, MANY_QUEUES], mids, yerr=bars, marker="s", capsize=3, label=f"{lib}, bench.many_queues",
                    **line)  # fmt: skip
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xticks([1, 4, 16, MANY_QUEUES], ["1", "4", "16", f"{MANY_QUEUES:,}"])
    ax.set_xlabel("queues the tasks are spread over (one worker consumes all)")
    ax.set_ylabel("drain rate, 2 worker processes (tasks/s)")
    ax.set_title("vs number of queues (solid: python -m bench; dotted: bench.many_queues)")
    ax.grid(True, which="both", alpha=0.3)
    if scaling or drains:
        ax.legend(fontsize="small", loc="upper left", bbox_to_anchor=(1.01, 1.0))


def draw(
    out: Path = PLOT, backlog: Path | None = RESULTS_DIR / "backlog_peers.json",
    results: Path | None = RESULTS_DIR / "results.json", many_queues: Path | None = RESULTS_DIR / "many_queues.json",
) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (left, right) = plt.subplots(1, 2, figsize=(16, 5.5))
    backlog_panel(left, load(backlog))
    queues_panel(right, load(results), load(many_queues))
    fig.suptitle(
        "Redis: drain rate on a 2-CPU machine; each bench ran at its own time and load"
        " (docs/performance.md): compare within a line"
    )
    fig.tight_layout()
    fig.savefig(out, dpi=100)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.plots", description=__doc__.split("\n")[0])
    parser.add_argument("--backlog", type=Path, default=RESULTS_DIR / "backlog_peers.json")
    parser.add_argument("--results", type=Path, default=RESULTS_DIR / "results.json")
    parser.add_argument("--many-queues", type=Path, default=RESULTS_DIR / "many_queues.json")
    parser.add_argument("--out", type=Path, default=PLOT)
    args = parser.parse_args(sys.argv[1:] if argv is None else argv)
    draw(args.out, args.backlog, args.results, args.many_queues)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
