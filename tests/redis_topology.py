"""Throwaway Redis topologies on loopback for tests: a 3-master + 3-replica Redis Cluster and
1 master + 1 replica + 3 sentinels, each from the installed redis-server binary, in a temp
folder, on free ports. ``stop()`` ends every process they started (fixture finalizers)."""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import pytest
import redis

from tests.servers import IN_CI, free_port, free_ports

NODE_TIMEOUT_MS = 1000  # a cluster master silent this long is failed over to its replica
SENTINEL_DOWN_MS = 1000  # sentinels call a master down after this much silence


def _binary(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        if IN_CI:
            pytest.fail(f"{name} is not installed, and CI=true requires it")
        pytest.skip(f"{name} is not installed")
    return path


def wait_for(predicate: Callable[[], object], timeout: float, what: str) -> None:
    """Poll ``predicate()`` (errors count as not yet) until true or the deadline."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            if predicate():
                return
        except (redis.RedisError, OSError):
            pass
        assert time.monotonic() < deadline, f"timed out after {timeout}s waiting for {what}"
        time.sleep(0.05)


def cluster_port() -> int:
    """A free port whose cluster bus port (+10000) is free too: Redis refuses ports > 55535."""
    while True:
        port = free_port()
        if port > 55535:
            continue
        with socket.socket() as bus:
            try:
                bus.bind(("127.0.0.1", port + 10000))
            except OSError:
                continue
        return port


class PortTaken(Exception):
    """A server exited at start: its port was taken after it was chosen."""


class _Processes:
    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.binary = _binary("redis-server")
        self.processes: dict[int, subprocess.Popen[bytes]] = {}  # port -> process
        self.arguments: dict[int, tuple[str, ...]] = {}  # port -> its arguments, for a restart

    def spawn(self, port: int, *args: str, bind: str = "127.0.0.1") -> None:
        folder = self.directory / str(port)
        folder.mkdir(exist_ok=True)
        self.arguments[port] = args
        self.processes[port] = subprocess.Popen(
            [self.binary, *args, "--port", str(port), "--bind", *bind.split(), "--dir", str(folder),
             "--save", "", "--appendonly", "no", "--logfile", str(folder / "log")],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )

    def start_with_retries(self, start: Callable[[], None], choose_ports: Callable[[], None]) -> None:
        """Start; if a server exits at once (another process took its port between the
        choice and the start), stop everything and try again on fresh ports, twice at most."""
        for attempt in range(3):
            try:
                start()
                return
            except PortTaken:
                self.stop()
                if attempt == 2:
                    raise
                choose_ports()
            except BaseException:
                self.stop()
                raise

    def wait_up(self, port: int) -> None:
        def answers() -> bool:
            if self.processes[port].poll() is not None:
                raise PortTaken(f"redis-server on {port} exited at start (see {self.directory / str(port)}/log)")
            return bool(self.client(port).ping())

        wait_for(answers, 10, f"redis-server on {port}")

    def kill(self, port: int) -> None:
        """SIGKILL: the server gets no chance to hand anything over."""
        process = self.processes.pop(port)
        process.kill()
        process.wait(10)

    def restart(self, port: int) -> None:
        """Start a killed server again, same port, folder and arguments (it rejoins as a replica)."""
        self.spawn(port, *self.arguments[port])
        self.wait_up(port)

    def stop(self) -> None:
        for port in list(self.processes):
            process = self.processes.pop(port)
            process.kill()
            process.wait(10)

    @staticmethod
    def client(port: int) -> redis.Redis:
        return redis.Redis(port=port, socket_timeout=2, socket_connect_timeout=1)


class ThrowawayCluster(_Processes):
    """3 masters + 3 replicas (``redis-cli --cluster create --cluster-replicas 1``)."""

    def __init__(self, directory: Path, nodes: int = 6) -> None:
        super().__init__(directory)
        self.nodes = nodes
        self._choose_ports()

    def _choose_ports(self) -> None:
        self.ports: list[int] = []
        while len(self.ports) < self.nodes:  # distinct: one at a time, a port may come back twice
            port = cluster_port()
            if port not in self.ports:
                self.ports.append(port)
        self.url = "redis+cluster://" + ",".join(f"127.0.0.1:{p}" for p in self.ports[:3])

    def start(self) -> None:
        self.start_with_retries(self._start, self._choose_ports)

    def _start(self) -> None:
        for port in self.ports:
            self.spawn(port, "--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf",
                       "--cluster-node-timeout", str(NODE_TIMEOUT_MS), "--cluster-require-full-coverage", "no")
        for port in self.ports:
            self.wait_up(port)
        subprocess.run(
            [_binary("redis-cli"), "--cluster", "create", *(f"127.0.0.1:{p}" for p in self.ports),
             "--cluster-replicas", "1", "--cluster-yes"],
            check=True, capture_output=True, timeout=30,
        )
        wait_for(self.healthy, 90, "cluster_state:ok on every node")
        wait_for(lambda: all(self.replicas_in_sync(m) for m in self.masters()), 90, "replicas in sync")

    def healthy(self) -> bool:
        return all(self.client(p).cluster("info")["cluster_state"] == "ok" for p in self.processes)  # type: ignore[no-untyped-call]

    def masters(self) -> set[int]:
        client = self.client(next(iter(self.processes)))
        return {int(master[1]) for _, _, master, *_ in client.cluster("slots")}  # type: ignore[no-untyped-call]

    def master_of(self, key: str) -> int:
        """The port of the master that serves ``key`` now."""
        client = self.client(next(iter(self.processes)))
        slot = int(client.cluster("keyslot", key))  # type: ignore[no-untyped-call]
        for start, end, master, *_ in client.cluster("slots"):  # type: ignore[no-untyped-call]
            if int(start) <= slot <= int(end):
                return int(master[1])
        raise AssertionError(f"no master serves slot {slot}")

    def replicas_in_sync(self, master: int) -> bool:
        """The master's replicas have every write it made so far (offsets equal)."""
        info = self.client(master).info("replication")
        offset = int(info["master_repl_offset"])
        replicas = [info[f"slave{i}"] for i in range(int(info["connected_slaves"]))]
        return bool(replicas) and all(r["state"] == "online" and int(r["offset"]) >= offset for r in replicas)


class ThrowawaySentinels(_Processes):
    """A master, one replica and three sentinels watching them as ``mymaster``."""

    def __init__(self, directory: Path, service: str = "mymaster") -> None:
        super().__init__(directory)
        self.service = service
        self._choose_ports()

    def _choose_ports(self) -> None:
        self.master, self.replica, *self.sentinels = free_ports(5)
        self.url = "redis+sentinel://" + ",".join(f"127.0.0.1:{p}" for p in self.sentinels) + f"/{self.service}/0"

    def start(self) -> None:
        self.start_with_retries(self._start, self._choose_ports)

    def _start(self) -> None:
        self.spawn(self.master)
        self.wait_up(self.master)
        self.spawn(self.replica, "--replicaof", "127.0.0.1", str(self.master))
        self.wait_up(self.replica)
        for port in self.sentinels:
            conf = self.directory / f"sentinel-{port}.conf"
            conf.write_text(
                f"sentinel monitor {self.service} 127.0.0.1 {self.master} 2\n"
                f"sentinel down-after-milliseconds {self.service} {SENTINEL_DOWN_MS}\n"
                f"sentinel failover-timeout {self.service} 5000\n"
            )
            self.spawn(port, str(conf), "--sentinel")
            self.wait_up(port)
        # Generous: sentinels learn of the replica and of each other from hello messages every
        # few seconds, and a loaded 2-core CI run once passed 15 s (as the cluster's sync did).
        wait_for(lambda: self.client(self.replica).info("replication")["master_link_status"] == "up", 60, "replica")
        wait_for(self._sentinels_ready, 60, "sentinels that know the replica and each other")

    def _sentinels_ready(self) -> bool:
        for port in self.sentinels:
            state = self.client(port).sentinel_master(self.service)
            if int(state["num-slaves"]) < 1 or int(state["num-other-sentinels"]) < 2:
                return False
        return True

    def has_replica(self, master: int) -> bool:
        info = self.client(master).info("replication")
        return any(info[f"slave{i}"]["state"] == "online" for i in range(int(info["connected_slaves"])))

    def current_master(self) -> int:
        _, port = self.client(self.sentinels[0]).sentinel_get_master_addr_by_name(self.service)
        return int(port)
