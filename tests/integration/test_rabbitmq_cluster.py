"""A 3-node RabbitMQ cluster on one host with quorum queues replicated across it; the URL
names the three nodes in failover order. Node 1's Erlang VM is SIGKILLed mid-run, then (back
again) node 2 is stopped cleanly: producer and consumers reconnect to the next node in the URL
each time, nothing confirmed is lost, redeliveries are counted (run with -s to see the counts).
Heavy (three nodes start, one restarts): about 80 s."""

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
from tests.integration.workers import wait_until
from tests.servers import free_port, require_rabbitmq
from tests.throwaway import serve

pytestmark = [pytest.mark.rabbitmq, pytest.mark.slow]


@pytest.fixture(scope="module")
def cluster() -> Iterator[ThrowawayRabbitCluster]:
    yield from serve(ThrowawayRabbitCluster())


def test_a_node_killed_then_another_stopped_mid_run_loses_nothing_confirmed(cluster: ThrowawayRabbitCluster) -> None:
    queues = [f"cluster-{uuid.uuid4().hex[:6]}-{i}" for i in range(2)]
    settings = Settings()
    settings.recovery_time = 2.0
    settings.queue_arguments = {q: {"x-queue-type": "quorum"} for q in queues}  # replicated on all 3 nodes
    traffic = FailoverTraffic(cluster.url, queues, settings)
    first, second, third = cluster.nodes
    faults: dict[str, float] = {}

    def publishing_goes_on() -> None:
        published = len(traffic.acknowledged)
        wait_until(lambda: len(traffic.acknowledged) > published + 100, 30, "publishing through another node")

    def kill_node_1_then_stop_node_2() -> None:
        assert cluster.nodes_of_clients(first) == {first.name}  # the first node of the URL
        faults["killed"] = time.monotonic()
        first.kill()
        publishing_goes_on()
        assert cluster.nodes_of_clients(third) == {second.name}  # the next one in the URL
        # Node 1 comes back (a quorum queue needs 2 of its 3 members up), then node 2 stops
        first.start()
        faults["stopped"] = time.monotonic()
        second.ctl("stop")
        publishing_goes_on()
        assert cluster.nodes_of_clients(third) == {first.name}  # the first one that answers

    # Given a producer (publisher confirms) and two consumers, all connected to node 1, when
    # node 1's VM is SIGKILLed and later node 2 stops cleanly, Then each time they reconnect
    # to the first node of the URL that answers...
    counts = traffic.through(kill_node_1_then_stop_node_2, timeout=30)
    del counts["outage_ms"]  # from before the first fault's checks: the two below are exact
    for fault, at in faults.items():
        counts[f"outage_{fault}_ms"] = int(traffic.publish_resumed(at, queues[0]) * 1000)
    print(f"\nrabbitmq cluster, node 1 of 3 SIGKILLed, then node 2 stopped (quorum queues): {counts}")
    # ...every message whose publish was confirmed was delivered, and every message delivered
    # twice was marked redelivered (what max_deliveries counts).
    assert counts["lost"] == 0, counts
    assert counts["duplicated"] <= counts["redelivered"], counts
    # The queues were quorum queues with a member on every node.
    listed = json.loads(third.ctl("list_queues", "name", "type", "members", "--formatter", "json"))
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
