"""PostgreSQL side by side: taskq and Procrastinate enqueue and drain rates on one server.

    python -m bench.postgres_drain [--count 20000] [--latency 500] [--url postgresql://postgres@127.0.0.1:5432/postgres]

Each library gets a fresh database (created and dropped here). Rows: single-call enqueue of
``--count`` no-op tasks (each its own transaction, as a web request would send them), the
same inside one transaction of the caller's (taskq's ``app.transaction``; Procrastinate's
defer on one connection has no such API, so the row is taskq's alone), the bulk API, then
two worker processes drain the queue. The drain rate is the steady one: from the moment the
first tasks are gone until none are left, so start-up is not counted; the database is
ANALYZEd before each drain (``--no-analyze``: not), as autovacuum would within a minute of a
bulk fill on a live server. Procrastinate runs
two worker processes with ``--concurrency`` 1 and 8 (its best is reported with both), and
once more with its sessions at ``synchronous_commit=off`` (what taskq's fetching sessions
use): its worker commits each job's fetch and finish, so a WAL flush per commit bounds it.
The server's own ceiling comes first: one-row INSERTs, a transaction each, with and without
waiting for the flush. Last, idle latency: 2 idle worker processes (Procrastinate
``--concurrency 1``; both wake on LISTEN/NOTIFY), then ``--latency`` stamp tasks sent 20 ms
apart, each appending (start - send time) to a file; p50/p95/p99.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import textwrap
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import psycopg

from bench import measure

LATENCY_GAP = 0.02  # seconds between stamp tasks (a single enqueue here may take a WAL flush)
ANALYZE = True  # --no-analyze: drain without the planner's statistics on the fresh tables
WARMUP = 8  # stamp tasks that warm the workers up before the latency row
PG_URL = os.environ.get("POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
REPO = Path(__file__).resolve().parents[1]

STAMP = """
        def record(sent_at):
            # One line per task, appended in one write (atomic for a short line).
            line = f"{time.time() - sent_at}\\n".encode()
            fd = os.open(os.environ["BENCH_LATENCY_FILE"], os.O_WRONLY | os.O_APPEND | os.O_CREAT)
            os.write(fd, line)
            os.close(fd)
"""
PROJECTS = {
    "taskq": """
        import os, time
        from taskq import TaskQ
        app = TaskQ("bench_tasks", backend="none")
"""
    + STAMP
    + """
        @app.task
        def noop(i):
            return i

        @app.task
        def stamp(sent_at):
            record(sent_at)
    """,
    "procrastinate": """
        import os, time
        import procrastinate
        # BENCH_ASYNC_COMMIT=1: its sessions commit without waiting for the WAL flush, as taskq's
        # fetching sessions do (synchronous_commit=off); by default each commit waits for it.
        _options = {"options": "-c synchronous_commit=off"} if os.environ.get("BENCH_ASYNC_COMMIT") else {}
        app = procrastinate.App(connector=procrastinate.PsycopgConnector(conninfo=os.environ["BENCH_URL"],
                                                                         kwargs=_options))
"""
    + STAMP
    + """
        @app.task(queue="celery")
        def noop(i):
            return i

        @app.task(queue="celery")
        def stamp(sent_at):
            record(sent_at)
    """,
}
REMAINING = {
    "taskq": "SELECT count(*) FROM taskq.messages",
    "procrastinate": "SELECT count(*) FROM procrastinate_jobs WHERE status IN ('todo', 'doing')",
}


def taskq_worker() -> list[str]:
    return [sys.executable, "-m", "taskq", "worker", "-A", "bench_tasks:app", "-P", "prefork", "-c", "2"]


def procrastinate_worker(concurrency: int) -> list[str]:
    return [sys.executable, "-m", "procrastinate", "--app", "bench_tasks.app", "worker",
            "--concurrency", str(concurrency), "--delete-jobs", "always"]  # fmt: skip


@contextmanager
def fresh_database(url: str) -> Iterator[str]:
    name = f"bench_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield url.rsplit("/", 1)[0] + "/" + name
    finally:
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE "{name}" WITH (FORCE)')


def remaining(url: str, lib: str) -> int:
    with psycopg.connect(url.split("?", 1)[0]) as conn:  # the broker URL without its ?schema=
        row = conn.execute(REMAINING[lib]).fetchone()
    return int(row[0]) if row else 0


def timed(label: str, count: int, run: Callable[[], object]) -> None:
    started = time.perf_counter()
    run()
    print(f"  enqueue {label:<44} {count / (time.perf_counter() - started):>9,.0f}/s", flush=True)


def start(url: str, folder: Path, commands: list[list[str]], **extra: str) -> list[subprocess.Popen[bytes]]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TASKQ_")}
    env.update(BENCH_URL=url, TASKQ_BROKER_URL=url, PYTHONPATH=os.pathsep.join([str(folder), str(REPO)]), **extra)
    env.setdefault("BENCH_LATENCY_FILE", str(folder / "latency"))
    return [subprocess.Popen(c, cwd=folder, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            for c in commands]  # fmt: skip


def stop(workers: list[subprocess.Popen[bytes]]) -> None:
    for worker in workers:
        worker.terminate()
    for worker in workers:
        worker.wait(30)


def latency(folder: Path, url: str, commands: list[list[str]], send: Callable[[float], object], n: int) -> None:
    """Idle workers, then n stamp tasks LATENCY_GAP apart: percentiles of enqueue-to-start."""
    record = folder / "latency"
    workers = start(url, folder, commands)
    try:
        for _ in range(WARMUP):
            send(time.time())
        lines(record, WARMUP, workers)
        time.sleep(1.0)  # idle: the workers wait on LISTEN (or their poll)
        record.unlink()
        next_send = time.perf_counter()
        for _ in range(n):
            send(time.time())
            next_send += LATENCY_GAP
            time.sleep(max(0.0, next_send - time.perf_counter()))
        values = [1000 * float(v) for v in lines(record, n, workers)]
        p50, p95, p99 = (measure.percentile(values, q) for q in (50, 95, 99))
        print(f"  latency, idle workers, {n} tasks {1000 * LATENCY_GAP:.0f} ms apart: "
              f"p50 {p50:.2f} ms, p95 {p95:.2f} ms, p99 {p99:.2f} ms", flush=True)  # fmt: skip
    finally:
        stop(workers)


def lines(path: Path, n: int, workers: list[subprocess.Popen[bytes]]) -> list[str]:
    deadline = time.monotonic() + 120
    while True:
        found = path.read_text().split() if path.exists() else []
        if len(found) >= n:
            return found
        if time.monotonic() > deadline or any(w.poll() is not None for w in workers):
            raise SystemExit(f"postgres_drain: {len(found)} of {n} stamp tasks ran (a worker exited or 120 s passed)")
        time.sleep(0.05)


def drain(lib: str, url: str, folder: Path, count: int, commands: list[list[str]], label: str, **extra: str) -> float:
    if ANALYZE:
        # A table filled in one go has no planner statistics until autovacuum's ANALYZE (within
        # a minute on a live server); without them Procrastinate's fetch sorts every queued job
        # on each call. Both libraries get the same.
        with psycopg.connect(url.split("?", 1)[0], autocommit=True) as conn:
            conn.execute("ANALYZE")
    before = transactions(url)
    polls = 0
    workers = start(url, folder, commands, **extra)
    try:
        first: tuple[float, int] | None = None
        while True:
            left = remaining(url, lib)
            polls += 1
            now = time.perf_counter()
            if first is None and left <= count - min(2000, count // 10):
                first = (now, left)
            if first is not None and left == 0:
                break
            time.sleep(0.02)
        rate = first[1] / (now - first[0])
    finally:
        stop(workers)
    time.sleep(1.0)  # backends report their transaction counts at most once a second
    per_task = (transactions(url) - before - polls - 1) / count
    print(f"  drain {label:<46} {rate:>9,.0f}/s  ({per_task:.2f} transactions per task)", flush=True)
    return rate


def transactions(url: str) -> int:
    """Committed plus rolled-back transactions in this database so far (this query's own included)."""
    with psycopg.connect(url.split("?", 1)[0], autocommit=True) as conn:
        row = conn.execute(
            "SELECT xact_commit + xact_rollback FROM pg_stat_database WHERE datname = current_database()"
        ).fetchone()
    return int(row[0]) if row else 0


def commit_ceiling(url: str, n: int = 300) -> None:
    """One-row INSERTs, each its own committed transaction: how fast this server flushes WAL."""
    with fresh_database(url) as db, psycopg.connect(db, autocommit=True) as conn:
        conn.execute("CREATE TABLE t (i int)")
        for sync in ("on", "off"):
            conn.execute(f"SET synchronous_commit = {sync}")
            started = time.perf_counter()
            for i in range(n):
                conn.execute("INSERT INTO t VALUES (%s)", (i,))
            rate = n / (time.perf_counter() - started)
            label = f"one-row INSERT per transaction, synchronous_commit={sync}"
            print(f"server: {label:<52} {rate:>9,.0f}/s", flush=True)


def bench(lib: str, url: str, count: int, latency_count: int) -> None:
    print(lib, flush=True)
    with tempfile.TemporaryDirectory() as tmp, fresh_database(url) as db:
        folder = Path(tmp)
        (folder / "bench_tasks.py").write_text(textwrap.dedent(PROJECTS[lib]))
        os.environ["BENCH_URL"] = db
        sys.path.insert(0, str(folder))
        sys.modules.pop("bench_tasks", None)
        try:
            import bench_tasks  # type: ignore[import-not-found]

            noop = bench_tasks.noop
            if lib == "taskq":
                bench_tasks.app.conf.broker_url = db + "?schema=taskq"
                timed("delay(), one transaction each", count, lambda: [noop.delay(i) for i in range(count)])
                with psycopg.connect(db) as conn:

                    def in_one() -> None:
                        with bench_tasks.app.transaction(conn):
                            for i in range(count):
                                noop.delay(i)

                    timed("delay() x N in the caller's transaction", count, in_one)
                timed("delay_many()", count, lambda: noop.delay_many([(i,) for i in range(count)]))
                bench_tasks.app.close()
                total = 3 * count
                drain(lib, db + "?schema=taskq", folder, total, [taskq_worker()], "(2 processes, steady)")
                stamp = bench_tasks.stamp
                latency(folder, db + "?schema=taskq", [taskq_worker()], lambda t: stamp.delay(t), latency_count)
                bench_tasks.app.close()
            else:
                subprocess.run([sys.executable, "-m", "procrastinate", "--app", "bench_tasks.app", "schema", "--apply"],
                               cwd=folder, env={**os.environ, "PYTHONPATH": str(folder)}, check=True,
                               capture_output=True)  # fmt: skip
                with bench_tasks.app.open():
                    timed("defer(), one transaction each", count, lambda: [noop.defer(i=i) for i in range(count)])
                    timed("batch_defer()", count, lambda: noop.batch_defer(*({"i": i} for i in range(count))))
                best = drain(lib, db, folder, 2 * count, [procrastinate_worker(1)] * 2,
                             "(2 processes, --concurrency 1, steady)")  # fmt: skip
                with bench_tasks.app.open():
                    noop.batch_defer(*({"i": i} for i in range(2 * count)))
                best = max(best, drain(lib, db, folder, 2 * count, [procrastinate_worker(8)] * 2,
                                       "(2 processes, --concurrency 8, steady)"))  # fmt: skip
                print(f"  drain best                                           {best:>9,.0f}/s")
                with bench_tasks.app.open():
                    noop.batch_defer(*({"i": i} for i in range(2 * count)))
                drain(lib, db, folder, 2 * count, [procrastinate_worker(8)] * 2,
                      "(2 proc., -c 8, synchronous_commit=off)", BENCH_ASYNC_COMMIT="1")  # fmt: skip
                with bench_tasks.app.open():
                    stamp = bench_tasks.stamp
                    latency(folder, db, [procrastinate_worker(1)] * 2, lambda t: stamp.defer(sent_at=t), latency_count)
        finally:
            sys.path.remove(str(folder))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--count", type=int, default=20000)
    parser.add_argument("--latency", type=int, default=500, help="stamp tasks for the idle-latency row")
    parser.add_argument("--url", default=PG_URL)
    parser.add_argument("--no-analyze", action="store_true", help="no ANALYZE of the filled tables before a drain")
    parser.add_argument("libs", nargs="*", default=["taskq", "procrastinate"])
    args = parser.parse_args()
    global ANALYZE
    ANALYZE = not args.no_analyze
    commit_ceiling(args.url)
    for lib in args.libs:
        bench(lib, args.url, args.count, args.latency)


if __name__ == "__main__":
    main()
