"""Time from starting ``taskq worker`` to its first task running, on the SQLite broker.

    python -m bench.startup [--runs 5] [--pool prefork|threads|solo] [--out DIR]

Each run: a fresh SQLite broker holds one queued task; the clock starts just before the
worker process is spawned (``python -m taskq worker -A bench.startup_app:app``) and stops
at the ``time.time()`` the task records as its first act, so interpreter start, imports,
broker setup, the pool's start and the first fetch are all counted. Also reported: the
optional brokers' client libraries found in the worker's ``sys.modules`` (none may be: an
SQLite worker imports no redis, pika, kombu or psycopg) and, for reference, ``python -c
pass`` (the interpreter's own start) measured the same way.

Writes ``startup.md`` in ``--out`` (default bench/results). ``python -X importtime -m taskq
worker ...`` shows where the import time goes.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

from bench import measure
from bench.procs import WorkerGroup

RESULTS_DIR = Path(__file__).resolve().parent / "results"
OPTIONAL_CLIENTS = ("redis", "pika", "kombu", "amqp", "psycopg", "psycopg2", "msgpack")
TIMEOUT = 30.0


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.startup", description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--pool", default="prefork", choices=["prefork", "threads", "solo"])
    parser.add_argument("--out", type=Path, default=RESULTS_DIR)
    return parser.parse_args(argv)


def one_run(pool: str, pycache: str) -> tuple[float, list[str]]:
    """Seconds from spawn to the first task, and the optional clients the worker imported."""
    with tempfile.TemporaryDirectory(prefix="taskq-startup-") as name:
        directory = Path(name)
        # Bytecode cached as an installed package has it (pip compiles on install), even
        # where the environment sets PYTHONDONTWRITEBYTECODE: compiling every module's
        # source at each start is not what a user's worker pays.
        env = {"BENCH_STARTUP_DIR": name, "PYTHONDONTWRITEBYTECODE": "", "PYTHONPYCACHEPREFIX": pycache}
        _enqueue_first(env)
        workers = WorkerGroup("taskq-startup", stop_grace=5.0)
        command = [sys.executable, "-m", "taskq", "worker", "-A", "bench.startup_app:app", "-P", pool, "-c", "1",
                   "-l", "warning"]  # fmt: skip
        started = time.time()
        workers.start([command], env)
        try:
            measure.wait_until(lambda: _ran(directory, workers), TIMEOUT, "the first task", interval=0.002)
        finally:
            workers.stop()
        ran_at = float((directory / "ran_at").read_text())
        modules = set((directory / "modules.txt").read_text().split())
        return ran_at - started, [m for m in OPTIONAL_CLIENTS if m in modules]


def _ran(directory: Path, workers: WorkerGroup) -> bool:
    workers.check_alive()
    return (directory / "ran_at").exists()


def _enqueue_first(env: dict[str, str]) -> None:
    """Queue the task from a separate process, so this one imports no taskq state."""
    import os
    import subprocess

    code = "from bench.startup_app import first; first.delay()"
    subprocess.run([sys.executable, "-c", code], env={**os.environ, **env}, check=True, timeout=TIMEOUT)


def interpreter_start(pycache: str) -> float:
    import os
    import subprocess

    env = {**os.environ, "PYTHONDONTWRITEBYTECODE": "", "PYTHONPYCACHEPREFIX": pycache}
    started = time.perf_counter()
    subprocess.run([sys.executable, "-c", "pass"], check=True, timeout=TIMEOUT, env=env)
    return time.perf_counter() - started


def main(argv: list[str] | None = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    samples: list[float] = []
    bare: list[float] = []
    imported: set[str] = set()
    with tempfile.TemporaryDirectory(prefix="taskq-pycache-") as pycache:
        one_run(args.pool, pycache)  # warm-up: writes the bytecode cache
        for _ in range(args.runs):  # interleaved with the bare interpreter, so drift hits both
            seconds, clients = one_run(args.pool, pycache)
            samples.append(seconds)
            imported.update(clients)
            bare.append(interpreter_start(pycache))
    cell = f"{measure.median(samples):.3f} ({min(samples):.3f}-{max(samples):.3f})"
    bare_cell = f"{measure.median(bare):.3f} ({min(bare):.3f}-{max(bare):.3f})"
    table = "\n".join([
        "| row | unit | taskq |",
        "|---|---|---|",
        f"| `taskq worker -P {args.pool} -c 1` on SQLite: spawn to first task | s | {cell} |",
        f"| `python -c pass` (the interpreter's own start, for reference) | s | {bare_cell} |",
        f"| optional brokers' clients in the worker's sys.modules | | {', '.join(sorted(imported)) or 'none'} |",
        "",
        f"Cells: median (min-max) over {args.runs} runs; `python -m bench.startup --runs {args.runs} "
        f"--pool {args.pool}`.",
    ])  # fmt: skip
    print(table)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / f"startup-{args.pool}.md").write_text(table + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
