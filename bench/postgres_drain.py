"""PostgreSQL side by side: taskq and Procrastinate enqueue and drain rates on one server.

    python -m bench.postgres_drain [--count 20000] [--url postgresql://postgres@127.0.0.1:5432/postgres]

Each library gets a fresh database (created and dropped here). Rows: single-call enqueue of
``--count`` no-op tasks (each its own transaction, as a web request would send them), the
same inside one transaction of the caller's (taskq's ``app.transaction``; Procrastinate's
defer on one connection has no such API, so the row is taskq's alone), the bulk API, then
two worker processes drain the queue. The drain rate is the steady one: from the moment the
first tasks are gone until none are left, so start-up is not counted. Procrastinate runs
two worker processes with ``--concurrency`` 1 and 8 (its best is reported with both).
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

PG_URL = os.environ.get("POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
REPO = Path(__file__).resolve().parents[1]

PROJECTS = {
    "taskq": """
        from taskq import TaskQ
        app = TaskQ("bench_tasks", backend="none")

        @app.task
        def noop(i):
            return i
    """,
    "procrastinate": """
        import os
        import procrastinate
        app = procrastinate.App(connector=procrastinate.PsycopgConnector(conninfo=os.environ["BENCH_URL"]))

        @app.task(queue="celery")
        def noop(i):
            return i
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


def drain(lib: str, url: str, folder: Path, count: int, commands: list[list[str]], label: str) -> float:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TASKQ_")}
    env.update(BENCH_URL=url, TASKQ_BROKER_URL=url, PYTHONPATH=os.pathsep.join([str(folder), str(REPO)]))
    workers = [subprocess.Popen(c, cwd=folder, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
               for c in commands]  # fmt: skip
    try:
        first: tuple[float, int] | None = None
        while True:
            left = remaining(url, lib)
            now = time.perf_counter()
            if first is None and left <= count - min(2000, count // 10):
                first = (now, left)
            if first is not None and left == 0:
                break
            time.sleep(0.02)
        rate = first[1] / (now - first[0])
        print(f"  drain {label:<46} {rate:>9,.0f}/s", flush=True)
        return rate
    finally:
        for worker in workers:
            worker.terminate()
        for worker in workers:
            worker.wait(30)


def bench(lib: str, url: str, count: int) -> None:
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
        finally:
            sys.path.remove(str(folder))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--count", type=int, default=20000)
    parser.add_argument("--url", default=PG_URL)
    parser.add_argument("libs", nargs="*", default=["taskq", "procrastinate"])
    args = parser.parse_args()
    for lib in args.libs:
        bench(lib, args.url, args.count)


if __name__ == "__main__":
    main()
