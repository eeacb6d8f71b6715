"""A throwaway 3-node RabbitMQ cluster on this host: three ThrowawayNodes (distinct node
names, ports and data folders; the same Erlang cookie, that of the rabbitmq user they run
as), the second and third joined to the first. ``url`` names all three in failover order.
``nodes_of_clients`` says which node the client connections are on."""

from __future__ import annotations

import json
import threading

from tests.integration.rabbitmq_node import ThrowawayNode, require_throwaway_node


class ThrowawayRabbitCluster:
    def __init__(self, size: int = 3) -> None:
        require_throwaway_node()
        self.nodes = [ThrowawayNode() for _ in range(size)]
        self.url = ";".join(node.url for node in self.nodes)

    def start(self) -> None:
        try:
            errors: list[BaseException] = []

            def start(node: ThrowawayNode) -> None:
                try:
                    node.start()
                except BaseException as exc:  # reported below, on the caller's thread
                    errors.append(exc)

            threads = [threading.Thread(target=start, args=(node,)) for node in self.nodes]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join(120)
            if errors:
                raise errors[0]
            first = self.nodes[0]
            for node in self.nodes[1:]:
                node.ctl("stop_app")
                node.ctl("join_cluster", first.name)
                node.ctl("start_app")
            running = json.loads(first.ctl("cluster_status", "--formatter", "json"))["running_nodes"]
            assert sorted(running) == sorted(node.name for node in self.nodes), running
        except BaseException:
            self.stop()
            raise

    def stop(self) -> None:
        """Stop every node and delete its folder."""
        for node in self.nodes:
            node.remove()

    def nodes_of_clients(self, asking: ThrowawayNode) -> set[str]:
        """The nodes the cluster's client connections are on (by the port each came in through),
        as the running node ``asking`` lists them."""
        names = {node.port: node.name for node in self.nodes}
        listed = json.loads(asking.ctl("list_connections", "port", "--formatter", "json"))
        return {names.get(int(connection["port"]), str(connection["port"])) for connection in listed}
