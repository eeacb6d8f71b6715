"""A network partition: a worker in its own network namespace (tests/integration/partition.py)
loses its link to Redis for longer than the recovery time, then gets it back. Its claims run
on a worker outside the partition meanwhile; nothing acknowledged is lost. Counts are printed
Jepsen-style (run with -s). Needs root (ip netns)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from taskq import TaskQ, states
from tests.integration.partition import Namespace, partition_counts
from tests.integration.workers import Marks, WorkerFactory, base_env, wait_until
from tests.redis_topology import _Processes
from tests.servers import free_port
from tests.throwaway import serve

pytestmark = [pytest.mark.redis, pytest.mark.slow]


@pytest.fixture
def namespace() -> Iterator[Namespace]:
    yield from serve(Namespace())


def test_a_worker_cut_off_longer_than_the_recovery_time_loses_nothing(
    namespace: Namespace, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A Redis server that listens on loopback and on the host side of the veth pair.
    servers = _Processes(tmp_path)
    port = free_port()
    # Protected mode refuses clients not on loopback; the veth address exists on this machine only.
    servers.spawn(port, "--protected-mode", "no", bind=f"127.0.0.1 {namespace.host}")
    try:
        servers.wait_up(port)
        env = base_env(tmp_path, f"redis://127.0.0.1:{port}/0", TASKQ_BEAT_STORE_URL=f"sqlite:///{tmp_path}/beat.db")
        for key, value in env.items():
            if key.startswith("TASKQ_"):
                monkeypatch.setenv(key, value)
        inside_env = {**env, "TASKQ_BROKER_URL": f"redis://{namespace.host}:{port}/0"}
        marks = Marks(Path(env["TASKQ_TEST_MARKS"]))
        inside = namespace.worker(inside_env, tmp_path / "inside.log", "-c", "2", "-P", "threads",
                                  "--prefetch-multiplier", "20")
        producer = TaskQ("producer")
        outside = WorkerFactory(tmp_path, env)
        try:
            # Given tasks claimed by the worker inside the namespace
            keys = [f"p{i}" for i in range(40)]
            results = producer.send_many("example_tasks.sleep_then", [((k, 0.1), {}) for k in keys])
            acknowledged = len(results)  # send_many returned: Redis has them all
            wait_until(lambda: sum(marks.count("done").values()) >= 4, 20, "tasks done inside")
            # When its link is cut for three times the recovery time (2 s) while another
            # worker runs outside, and the link comes back
            namespace.cut_for(6, lambda: outside.start("-c", "2", "-P", "threads"))
            # Then every task finished, those it held having run outside
            finished = [r.get(timeout=40) for r in results]
            assert finished == keys
            assert all(r.state == states.SUCCESS for r in results)
        finally:
            inside.kill()
            inside.wait(10)
            outside.close()
            producer.close()
        counts = partition_counts(keys, acknowledged, marks, inside.pid)
        print(f"\npartition of a worker (6 s, recovery time 2 s): {counts}")
        assert counts["lost"] == 0
        assert counts["recovered"] > 0  # the cut-off worker's claims ran elsewhere
    finally:
        servers.stop()
