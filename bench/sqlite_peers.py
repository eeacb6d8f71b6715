"""The embedded SQLite broker beside Huey's SqliteHuey and a bare sqlite3 loop, one file each.

    python -m bench.sqlite_peers [--count 20000] [--runs 3] [--backlog 1000000] [--only LIB ...]

Rows, for each library, interleaved over ``--runs`` (A B C, then B C A, ...), each on a fresh
file in a temporary directory (on disk, not tmpfs):
- enqueue, one call per task: ``--count`` / 4 calls of the single-send API (taskq ``delay()``,
  Huey's task call, raw: one autocommitted INSERT), each its own transaction;
- enqueue, bulk: taskq ``delay_many`` (one INSERT statement per chunk), raw ``executemany``
  in one transaction; Huey has none;
- drain: ``--count`` queued tasks, then 2 worker processes (taskq ``worker -P prefork -c 2``,
  ``huey_consumer -k process -w 2``, 2 processes of the raw loop, which deletes up to 128 rows
  per statement and runs them, with no claim or ack: the floor). Clock as in bench.measure.
Then the backlog: taskq (and raw) with ``--backlog`` tasks queued, drained the same way, with
the file's size (database + WAL) after the fill, after the drain, and after filling it again
with as many (SQLite reuses the freed pages: the file must not grow the second time).
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import sqlite3
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

from bench import measure
from bench.plan import PROCESSES
from bench.procs import WorkerGroup

RESULTS_DIR = Path(__file__).resolve().parent / "results"
LIBS = ("taskq", "huey", "raw")
TIMEOUT_PER_TASK = 0.005  # seconds allowed per queued task in a drain, plus a minute


def log(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


class Library:
    """One library on one SQLite file; the apps themselves live in bench.sqlite_apps."""

    def __init__(self, name: str, path: Path) -> None:
        self.name = name
        self.path = path
        os.environ["BENCH_SQLITE_PATH"] = str(path)
        sys.modules.pop("bench.sqlite_apps", None)  # each file gets its own app objects
        self.apps = importlib.import_module("bench.sqlite_apps")
        self.workers = WorkerGroup(f"sqlite-{name}")
        self.raw = self.apps.raw_connect() if name == "raw" else None

    def enqueue_one(self, n: int) -> None:
        if self.name == "taskq":
            delay = self.apps.noop.delay
            for _ in range(n):
                delay()
        elif self.name == "huey":
            for _ in range(n):
                self.apps.huey_noop()
        else:
            assert self.raw is not None
            insert, payload = "INSERT INTO raw_queue (payload) VALUES (?)", self.apps.RAW_PAYLOAD
            for _ in range(n):
                self.raw.execute(insert, (payload,))

    def enqueue_bulk(self, n: int) -> None:
        if self.name == "taskq":
            self.apps.noop.delay_many([()] * n)
        elif self.name == "raw":
            assert self.raw is not None
            self.raw.execute("BEGIN IMMEDIATE")
            self.raw.executemany("INSERT INTO raw_queue (payload) VALUES (?)", [(self.apps.RAW_PAYLOAD,)] * n)
            self.raw.execute("COMMIT")
        else:
            raise NotImplementedError("huey has no bulk enqueue")

    def fill(self, n: int) -> None:
        self.enqueue_one(n) if self.name == "huey" else self.enqueue_bulk(n)

    def remaining(self) -> int:
        table = {"taskq": "taskq_messages", "huey": "task", "raw": "raw_queue"}[self.name]
        with sqlite3.connect(self.path, timeout=30) as conn:
            return int(conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0])

    def start_workers(self) -> None:
        python = sys.executable
        commands = {
            "taskq": [[python, "-m", "taskq", "worker", "-A", "bench.sqlite_apps:app", "-Q", self.apps.QUEUE,
                       "-c", str(PROCESSES), "-P", "prefork", "-l", "warning"]],
            "huey": [[python, "-m", "huey.bin.huey_consumer", "bench.sqlite_apps.huey", "-k", "process",
                      "-w", str(PROCESSES), "-q"]],
            "raw": [[python, "-m", "bench.sqlite_apps", "raw"] for _ in range(PROCESSES)],
        }[self.name]  # fmt: skip
        self.workers.start(commands, {"BENCH_SQLITE_PATH": str(self.path)})

    def file_mb(self) -> float:
        files = [self.path, self.path.with_name(self.path.name + "-wal")]
        return sum(f.stat().st_size for f in files if f.exists()) / 1e6

    def close(self) -> None:
        self.workers.stop()
        if self.raw is not None:
            self.raw.close()
        self.apps.app.close()
        self.apps.huey.storage.close() if hasattr(self.apps.huey.storage, "close") else None


def drain(lib: Library, n: int) -> float:
    queued = lib.remaining()
    if queued != n:
        raise RuntimeError(f"{lib.name}: expected {n} queued tasks, found {queued}")
    lib.start_workers()
    try:
        interval = 0.002 if n <= 50_000 else 0.05  # count(*) over a big table costs CPU too
        return measure.drain_rate(lib.remaining, n, 60 + n * TIMEOUT_PER_TASK, interval)
    except measure.BenchTimeout:
        lib.workers.check_alive()
        raise
    finally:
        lib.workers.stop()


def on_fresh_file(name: str, action: Callable[[Library], dict[str, float]]) -> dict[str, float]:
    with tempfile.TemporaryDirectory(prefix="bench-sqlite-", dir=os.environ.get("BENCH_SQLITE_DIR")) as tmp:
        lib = Library(name, Path(tmp) / "bench.db")
        try:
            return action(lib)
        finally:
            lib.close()


def rows(lib: Library, count: int) -> dict[str, float]:
    out: dict[str, float] = {}
    few = count // 4
    out["enqueue_one"] = few / measure.timed(lambda: lib.enqueue_one(few))
    lib.start_workers()  # drain what the single row queued, so the next rows start empty
    measure.wait_until(lambda: lib.remaining() == 0, 60 + few * TIMEOUT_PER_TASK, "the single-enqueue tasks")
    lib.workers.stop()
    if lib.name != "huey":
        out["enqueue_bulk"] = count / measure.timed(lambda: lib.enqueue_bulk(count))
    else:
        lib.fill(count)
    out["drain"] = drain(lib, count)
    log(f"  {lib.name:6} " + "  ".join(f"{k} {v:,.0f}/s" for k, v in out.items()))
    return out


def backlog(lib: Library, n: int) -> dict[str, float]:
    out = {"size": float(n)}
    out["enqueue"] = n / measure.timed(lambda: lib.fill(n))
    out["file_mb_full"] = lib.file_mb()
    out["drain"] = drain(lib, n)
    out["file_mb_drained"] = lib.file_mb()
    lib.fill(n)  # the freed pages are reused: the file must not grow a second time
    out["file_mb_refilled"] = lib.file_mb()
    log(f"  {lib.name:6} backlog {n:,}: " + "  ".join(f"{k} {v:,.1f}" for k, v in out.items()))
    return out


def markdown(results: dict[str, dict[str, list[float]]], backlogs: list[dict[str, object]], notes: list[str]) -> str:
    names = [lib for lib in LIBS if lib in results]
    labels = {"enqueue_one": "enqueue, one call per task", "enqueue_bulk": "enqueue, bulk API",
              "drain": f"drain, {PROCESSES} processes"}  # fmt: skip
    lines = ["| row (tasks/s) | " + " | ".join(names) + " | taskq / huey | taskq % of raw |",
             "|---|" + "---|" * (len(names) + 2)]  # fmt: skip
    for key, label in labels.items():
        cells, mids = [], {}
        for lib in names:
            values = results[lib].get(key, [])
            mids[lib] = measure.median(values) if values else float("nan")
            cells.append(f"{mids[lib]:,.0f} ({min(values):,.0f}-{max(values):,.0f})" if values else "—")
        ratio = mids.get("taskq", float("nan")) / mids.get("huey", float("nan"))
        share = mids.get("taskq", float("nan")) / mids.get("raw", float("nan"))
        lines.append(f"| {label} | " + " | ".join(cells) + f" | {_fmt(ratio, 'x')} | {_fmt(100 * share, '%')} |")
    if backlogs:
        lines += ["", "| library | backlog | enqueue tasks/s | drain tasks/s | drain vs its smallest backlog | "
                  "file MB full | drained | refilled |", "|---|---|---|---|---|---|---|---|"]  # fmt: skip
        base: dict[str, float] = {}
        for b in backlogs:
            r: dict[str, float] = b["row"]  # type: ignore[assignment]
            first = base.setdefault(str(b["lib"]), r["drain"])
            lines.append(f"| {b['lib']} | {int(r['size']):,} | {r['enqueue']:,.0f} | {r['drain']:,.0f} | "
                         f"{100 * r['drain'] / first:.0f}% | {r['file_mb_full']:,.1f} | {r['file_mb_drained']:,.1f} | "
                         f"{r['file_mb_refilled']:,.1f} |")  # fmt: skip
    lines += ["", "Cells: median (min-max) over runs."] + [f"- {n}" for n in notes]
    return "\n".join(lines) + "\n"


def _fmt(value: float, unit: str) -> str:
    return "—" if value != value else (f"{value:.2f}x" if unit == "x" else f"{value:.0f}%")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.sqlite_peers", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    parser.add_argument("--count", type=int, default=20_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--backlog", type=int, default=0, help="also drain this many queued tasks (taskq, raw)")
    parser.add_argument("--only", action="append", choices=LIBS)
    parser.add_argument("--out", type=Path, default=RESULTS_DIR)
    args = parser.parse_args(sys.argv[1:] if argv is None else argv)
    if args.count < 4 or args.runs < 1 or args.backlog < 0:
        raise SystemExit("python -m bench.sqlite_peers: --count must be at least 4, --runs at least 1")
    names = args.only or list(LIBS)
    notes = [f"python -m bench.sqlite_peers {' '.join(sys.argv[1:] if argv is None else argv)}".rstrip(),
             f"load average at the start {', '.join(f'{v:.1f}' for v in os.getloadavg())}"]  # fmt: skip
    results: dict[str, dict[str, list[float]]] = {lib: {} for lib in names}
    for run in range(args.runs):
        for lib in names[run % len(names) :] + names[: run % len(names)]:
            for key, value in on_fresh_file(lib, lambda lb: rows(lb, args.count)).items():
                results[lib].setdefault(key, []).append(value)
    backlogs: list[dict[str, object]] = []
    if args.backlog:
        for lib in [lib for lib in ("taskq", "raw") if lib in names]:
            for n in (args.count, args.backlog):
                backlogs.append({"lib": lib, "row": on_fresh_file(lib, lambda lb, n=n: backlog(lb, n))})  # type: ignore[misc]
    notes.append(f"load average at the end {', '.join(f'{v:.1f}' for v in os.getloadavg())}")
    text = markdown(results, backlogs, notes)
    print(text)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "sqlite.md").write_text(text)
    (args.out / "sqlite.json").write_text(json.dumps({"rows": results, "backlog": backlogs, "notes": notes}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
