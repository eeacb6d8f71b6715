"""Redis Cluster beside a single Redis server: drain rates with 1, 3 and 6 queues.

    python -m bench.redis_cluster [--count 20000] [--consumers 3]

Starts its own servers on loopback (a 3-master + 3-replica cluster and one plain server, from
the installed redis-server) and stops them at the end. For each target and queue count:
``--count`` messages are published (bulk) spread evenly over the queues, then
``--consumers`` processes, each fetching from every queue in batches of 100 and acking,
drain them; the rate is messages over the drain's wall time. On a machine with few cores
the cluster's extra servers compete with the consumers for CPU: the figures say what the
topology costs per message more than what it adds in capacity.
"""

from __future__ import annotations

import argparse
import multiprocessing
import tempfile
import time
from pathlib import Path

from taskq.brokers.base import Publication
from taskq.brokers.redis import RedisBroker
from taskq.config import Settings
from taskq.envelope import Envelope
from tests.redis_topology import ThrowawayCluster, _Processes, cluster_port, wait_for


def _drain(url: str, queues: list[str], done: multiprocessing.sharedctypes.Synchronized[int], total: int) -> None:
    broker = RedisBroker(url, Settings())
    while done.value < total:
        batch = broker.fetch(queues, 100, timeout=0.2)
        if batch:
            broker.ack(batch)
            with done.get_lock():
                done.value += len(batch)
    broker.close()


def measure(url: str, queues: int, count: int, consumers: int) -> tuple[float, float]:
    """(publish rate, drain rate) in messages per second."""
    names = [f"bench-{time.monotonic_ns()}-{i}" for i in range(queues)]
    broker = RedisBroker(url, Settings())
    body = b"[[], {}, {}]"
    items = [
        Publication(names[i % queues], Envelope({"task": "t.noop", "id": f"m{i}", "lang": "py"}, body))
        for i in range(count)
    ]
    started = time.perf_counter()
    broker.publish_many(items)
    published = time.perf_counter() - started
    done = multiprocessing.Value("i", 0)
    context = multiprocessing.get_context("fork")
    workers = [context.Process(target=_drain, args=(url, names, done, count)) for _ in range(consumers)]
    started = time.perf_counter()
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(300)
    drained = time.perf_counter() - started
    for name in names:
        broker.purge(name)
    broker.close()
    return count / published, count / drained


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.redis_cluster", description=__doc__)
    parser.add_argument("--count", type=int, default=20000)
    parser.add_argument("--consumers", type=int, default=3)
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="taskq-bench-cluster-"))
    cluster = ThrowawayCluster(folder / "cluster")
    (folder / "cluster").mkdir()
    (folder / "single").mkdir()
    single = _Processes(folder / "single")
    port = cluster_port()
    try:
        single.spawn(port)
        wait_for(single.client(port).ping, 10, "the single server")
        cluster.start()
        targets = {"single server": f"redis://127.0.0.1:{port}/0", "cluster 3+3": cluster.url}
        print(f"{args.count} messages, {args.consumers} consumer processes, batches of 100")
        print(f"{'target':<14} {'queues':>6} {'publish/s':>10} {'drain/s':>9}")
        for queues in (1, 3, 6):
            for name, url in targets.items():
                publish, drain = measure(url, queues, args.count, args.consumers)
                print(f"{name:<14} {queues:>6} {publish:>10.0f} {drain:>9.0f}", flush=True)
    finally:
        cluster.stop()
        single.stop()


if __name__ == "__main__":
    main()
