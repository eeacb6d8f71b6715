"""A network partition on RabbitMQ: a worker in its own network namespace
(tests/integration/partition.py) loses its link to the RabbitMQ node for longer than the
heartbeat timeout and the recovery time, then gets it back. RabbitMQ closes the silent
connection and hands the deliveries it held to a worker outside the partition; nothing
confirmed is lost, and the worker inside carries on once the link is back. Counts are printed
Jepsen-style (run with -s). Needs root (ip netns) and a throwaway node (about 25 s)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from taskq import TaskQ
from tests.integration.partition import Namespace, partition_counts
from tests.integration.rabbitmq_node import ThrowawayNode
from tests.integration.workers import WorkerFactory, base_env, wait_until
from tests.throwaway import serve

pytestmark = [pytest.mark.rabbitmq, pytest.mark.slow]

HEARTBEAT = 2  # seconds; RabbitMQ closes a connection silent for about two of them


class VethNode(ThrowawayNode):
    """A node that listens on loopback and on the host side of a veth pair too, and lets guest
    log in from there (the veth address exists on this machine only)."""

    def __init__(self, address: str) -> None:
        self.address = address
        super().__init__()

    def extra_config(self) -> list[str]:
        return [f"listeners.tcp.veth = {self.address}:{self.port}", "loopback_users = none"]


@pytest.fixture
def namespace() -> Iterator[Namespace]:
    yield from serve(Namespace())


@pytest.fixture
def node(namespace: Namespace) -> Iterator[VethNode]:
    node = VethNode(namespace.host)
    yield from serve(node, node.remove)


def test_a_worker_cut_off_from_rabbitmq_longer_than_the_recovery_time_loses_nothing(
    namespace: Namespace, node: VethNode, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    env = base_env(tmp_path, node.url)  # no result backend: the marks say what ran where
    for key, value in env.items():
        if key.startswith("TASKQ_"):
            monkeypatch.setenv(key, value)
    inside_url = f"amqp://guest:guest@{namespace.host}:{node.port}//?heartbeat={HEARTBEAT}"
    inside = namespace.worker({**env, "TASKQ_BROKER_URL": inside_url}, tmp_path / "inside.log",
                              "-c", "2", "-P", "threads", "--prefetch-multiplier", "20")
    producer = TaskQ("producer", broker=node.url)
    outside = WorkerFactory(tmp_path, env)
    marks = outside.marks
    try:
        # Given tasks delivered to the worker inside the namespace (publisher confirms: a send
        # that returned is acknowledged)
        keys = [f"p{i}" for i in range(40)]
        producer.send_many("example_tasks.sleep_then", [((k, 0.1), {}) for k in keys])
        wait_until(lambda: sum(marks.count("done").values()) >= 4, 20, "tasks done inside")
        # When its link is cut for 8 s (twice the heartbeat timeout, four times the recovery
        # time) while another worker runs outside, and the link comes back
        namespace.cut_for(8, lambda: outside.start("-c", "2", "-P", "threads"))
        # Then every task finished, those it held having run outside...
        wait_until(lambda: set(keys) <= set(marks.count("done")), 40, "every task done")
        # ...and the worker inside lived through it and works again, alone
        assert inside.poll() is None, (tmp_path / "inside.log").read_text()
        for worker in outside.workers:
            assert worker.stop() == 0
        producer.send_task("example_tasks.sleep_then", ("after", 0.0))
        wait_until(lambda: marks.pids("done", "after") == [inside.pid], 30, "a task run inside after the partition")
    finally:
        inside.kill()
        inside.wait(10)
        outside.close()
        producer.close()
    counts = partition_counts(keys, len(keys), marks, inside.pid)
    print(f"\nrabbitmq partition of a worker (8 s, heartbeat {HEARTBEAT} s, recovery time 2 s): {counts}")
    assert counts["lost"] == 0, counts
    assert counts["recovered"] > 0, counts  # what the cut-off worker held ran elsewhere
