"""A 3-node RabbitMQ cluster on one host with quorum queues replicated across it; the URL
names the three nodes in failover order. The first node is stopped mid-run: producer and
consumers reconnect to another node, nothing confirmed is lost, redeliveries are counted
(run with -s to see the counts). Heavy (three nodes start): about a minute."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator

import pytest

from taskq import TaskQ
from taskq.brokers.rabbitmq import RabbitMQBroker
from taskq.config import Settings
from taskq.envelope import Envelope
from taskq.errors import ConfigurationError
from tests.contract.rabbitmq_factories import delete_queues
from tests.integration.failover_traffic import FailoverTraffic
from tests.integration.rabbitmq_cluster import ThrowawayRabbitCluster
from tests.redis_topology import wait_for
from tests.servers import free_port, require_rabbitmq

pytestmark = [pytest.mark.rabbitmq, pytest.mark.slow]


@pytest.fixture(scope="module")
def cluster() -> Iterator[ThrowawayRabbitCluster]:
    servers = ThrowawayRabbitCluster()
    servers.start()
    try:
        yield servers
    finally:
        servers.remove()


def test_a_node_stopped_mid_run_loses_nothing_confirmed(cluster: ThrowawayRabbitCluster) -> None:
    queues = [f"cluster-{uuid.uuid4().hex[:6]}-{i}" for i in range(2)]
    settings = Settings()
    settings.recovery_time = 2.0
    settings.queue_arguments = {q: {"x-queue-type": "quorum"} for q in queues}  # replicated on all 3 nodes
    traffic = FailoverTraffic(cluster.url, queues, settings)
    try:
        # Given a producer (publisher confirms) and two consumers, all connected to node 1
        traffic.start()
        traffic.wait_delivered(200, timeout=30)
        # When node 1 stops
        stopped = time.monotonic()
        cluster.nodes[0].ctl("stop")
        # Then they reconnect to node 2 and carry on...
        after = len(traffic.acknowledged)
        wait_for(lambda: len(traffic.acknowledged) > after + 100, 30, "publishing through another node")
        counts = traffic.finish(timeout=30)
    finally:
        traffic.abort()
    counts["outage_ms"] = int(traffic.publish_resumed(stopped, queues[0]) * 1000)
    print(f"\nrabbitmq cluster, node 1 of 3 stopped (quorum queues): {counts}")
    # ...and every message whose publish was confirmed is delivered.
    assert counts["lost"] == 0, counts
    # The queues were quorum queues with a member on every node (the survivors say so).
    listed = json.loads(cluster.nodes[1].ctl("list_queues", "name", "type", "members", "--formatter", "json"))
    ours = [q for q in listed if q["name"] in queues]
    assert len(ours) == 2 and all(q["type"] == "quorum" and len(q["members"]) == 3 for q in ours), ours


def test_the_next_node_in_the_url_is_used_when_the_first_does_not_answer() -> None:
    url = require_rabbitmq()
    queue = f"failover-order-{uuid.uuid4().hex[:6]}"
    broker = RabbitMQBroker(f"amqp://guest:guest@127.0.0.1:{free_port()}//;{url}", Settings())
    try:
        broker.publish(queue, Envelope({"task": "t.noop", "id": "x", "lang": "py"}, b"[[], {}, {}]"))
        assert broker.queue_length(queue) == 1
        assert broker.purge(queue) == 1
    finally:
        broker.close()
        delete_queues(url, [queue])


def test_every_node_of_a_failover_url_is_checked() -> None:
    with pytest.raises(ConfigurationError, match="the port must be a number"):
        TaskQ("x", broker="amqp://guest:guest@127.0.0.1:5672//;amqp://guest:guest@127.0.0.1:99999//").check()
