"""Redis test support: the contract-suite factories, and a throwaway redis-server.

Each broker or backend instance gets a unique key prefix (broker) or key/channel prefix
(backend), and its cleanup deletes every key under that prefix, so tests never see each
other's data. Tests that restart or kill Redis use ThrowawayRedis, never the shared server.
"""

from __future__ import annotations

import shutil
import subprocess
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import pytest
import redis

from taskq.backends.base import ResultBackend
from taskq.brokers.base import Broker
from taskq.config import Settings
from tests.contract.conftest import BACKENDS, BROKERS
from tests.servers import IN_CI, free_port, require_redis


def delete_prefixed(url: str, prefix: str) -> None:
    client = redis.Redis.from_url(url)
    try:
        keys = list(client.scan_iter(match=prefix + "*", count=1000))
        for start in range(0, len(keys), 500):
            client.delete(*keys[start : start + 500])
    finally:
        client.close()


def unique_prefix() -> str:
    return f"taskq-test-{uuid.uuid4().hex[:12]}:"


def redis_broker(tmp_path: Path, settings: Settings) -> tuple[Broker, Callable[[], None]]:
    from taskq.brokers.redis import RedisBroker

    url = require_redis()
    prefix = unique_prefix()
    settings.broker_transport_options = {**settings.broker_transport_options, "global_keyprefix": prefix}
    broker = RedisBroker(url, settings)

    def cleanup() -> None:
        broker.close()
        delete_prefixed(url, prefix)

    return broker, cleanup


def redis_backend(tmp_path: Path, settings: Settings) -> tuple[ResultBackend, Callable[[], None]]:
    from taskq.backends.redis import RedisBackend

    url = require_redis()
    prefix = unique_prefix()
    backend = RedisBackend(url, settings, global_keyprefix=prefix)

    def cleanup() -> None:
        backend.close()
        delete_prefixed(url, prefix)

    return backend, cleanup


BROKERS["redis"] = redis_broker
BACKENDS["redis"] = redis_backend


def _need(binary: str) -> str:
    path = shutil.which(binary)
    if path is None:
        if IN_CI:
            pytest.fail(f"{binary} is not installed, and CI=true requires it")
        pytest.skip(f"{binary} is not installed")
    return path


class ThrowawayRedis:
    """A private redis-server on a free port with every write fsynced to its append-only file,
    so a restart keeps everything that was acknowledged. With ``tls=True`` it listens for TLS
    only, with a self-signed certificate made for it (the URL names it as the CA)."""

    def __init__(self, directory: Path, tls: bool = False) -> None:
        self.binary = _need("redis-server")
        self.directory = directory
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.listen = ["--port", str(self.port)]
        if tls:
            cert, key = directory / "cert.pem", directory / "key.pem"
            subprocess.run(
                [_need("openssl"), "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key),
                 "-out", str(cert), "-days", "1", "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1"],
                check=True, capture_output=True,
            )
            self.listen = ["--port", "0", "--tls-port", str(self.port), "--tls-cert-file", str(cert),
                           "--tls-key-file", str(key), "--tls-ca-cert-file", str(cert), "--tls-auth-clients", "no"]
            self.url = f"rediss://127.0.0.1:{self.port}/0?ssl_ca_certs={cert}"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.process = subprocess.Popen(
            [self.binary, *self.listen, "--bind", "127.0.0.1", "--dir", str(self.directory),
             "--appendonly", "yes", "--appendfsync", "always", "--save", ""],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        client = redis.Redis.from_url(self.url, socket_connect_timeout=0.5)
        deadline = time.monotonic() + 10
        try:
            while True:
                try:
                    if client.ping():
                        return
                except redis.RedisError:
                    pass  # still starting (or still loading its append-only file)
                assert self.process.poll() is None, "redis-server exited at start"
                assert time.monotonic() < deadline, "redis-server did not answer within 10 s"
                time.sleep(0.05)
        finally:
            client.close()

    def stop(self, kill: bool = False) -> None:
        if self.process is None:
            return
        if kill:
            self.process.kill()
        else:
            self.process.terminate()
        self.process.wait(timeout=10)
        self.process = None

    def restart(self, kill: bool = False) -> None:
        self.stop(kill)
        self.start()
