"""The app of ``bench.task_cpu``: one no-op task on ``BENCH_CPU_URL`` (Redis or SQLite).

Imports nothing from ``bench``: the harness copies it out, as ``bench_cpu_app``, so that a
worker of any checkout (one without this file too) imports it next to its own taskq.
``python -m bench.task_cpu_app fill N | remaining | reset`` is the producer's side.
"""

from __future__ import annotations

import os
import sys

from taskq import TaskQ

QUEUE = "bench-cpu"
URL = os.environ["BENCH_CPU_URL"]
app = TaskQ("bench-cpu", broker=URL, backend=URL, task_default_queue=QUEUE)


@app.task(name="bench.cpu.noop")
def noop() -> None:
    return None


def main(argv: list[str]) -> int:
    if argv[0] == "fill":
        n = int(argv[1])
        for start in range(0, n, 1000):
            noop.delay_many([()] * min(1000, n - start))
    elif argv[0] == "remaining":
        print(app.broker.queue_length(QUEUE))
    elif argv[0] == "reset":
        app.broker.purge(QUEUE)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
