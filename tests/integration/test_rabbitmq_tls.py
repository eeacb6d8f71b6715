"""amqps:// for real: a throwaway node with a TLS listener and a throwaway CA.

The node (rabbitmq_node.py) keeps its plain listener and adds ``listeners.ssl.default`` on
a port of its own, with a server certificate for 127.0.0.1 signed by a CA made here with
the ``openssl`` CLI. taskq trusts that CA through pika's URL option
``?ssl_options={'ca_certs': ...}`` (docs/rabbitmq.md, TLS).
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlencode

import pytest

from taskq import TaskQ
from taskq.brokers.rabbitmq import RabbitMQBroker
from taskq.config import Settings
from taskq.envelope import Envelope
from taskq.errors import BrokerError, PublishError
from tests.contract.rabbitmq_factories import delete_queues
from tests.integration.rabbitmq_node import ThrowawayNode, require_throwaway_node
from tests.servers import IN_CI, free_port
from tests.throwaway import serve

pytestmark = [pytest.mark.rabbitmq, pytest.mark.slow]


@dataclass(frozen=True)
class Certificates:
    ca: Path  # signed the server certificate
    server_cert: Path  # for IP 127.0.0.1 and DNS localhost
    server_key: Path
    other_ca: Path  # a CA that signed nothing the node shows


def openssl(folder: Path, *args: str) -> None:
    subprocess.run(["openssl", *args], cwd=folder, check=True, timeout=30, capture_output=True)


def make_certificates(folder: Path) -> Certificates:
    """Two self-signed CAs and a server certificate signed by the first (valid two days)."""
    folder.mkdir()
    for name in ("ca", "other-ca"):
        openssl(
            folder, "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
            "-keyout", f"{name}.key", "-out", f"{name}.pem", "-subj", f"/CN=taskq-test-{name}",
            "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign,cRLSign",
        )  # fmt: skip
    # The extensions a strict verifier (Python 3.13's VERIFY_X509_STRICT) asks of a leaf.
    (folder / "server.ext").write_text(
        "basicConstraints=critical,CA:FALSE\n"
        "keyUsage=critical,digitalSignature,keyEncipherment\n"
        "extendedKeyUsage=serverAuth\n"
        "subjectAltName=IP:127.0.0.1,DNS:localhost\n"
        "subjectKeyIdentifier=hash\n"
        "authorityKeyIdentifier=keyid\n"
    )
    openssl(folder, "req", "-newkey", "rsa:2048", "-nodes", "-keyout", "server.key", "-out", "server.csr",
            "-subj", "/CN=localhost")  # fmt: skip
    openssl(folder, "x509", "-req", "-in", "server.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial",
            "-days", "2", "-extfile", "server.ext", "-out", "server.pem")  # fmt: skip
    return Certificates(folder / "ca.pem", folder / "server.pem", folder / "server.key", folder / "other-ca.pem")


class TlsNode(ThrowawayNode):
    """A throwaway node with its plain listener plus a TLS listener that asks no client certificate."""

    def extra_config(self) -> list[str]:
        self.tls_port = free_port()
        self.certs = make_certificates(self.folder / "tls")
        return [
            f"listeners.ssl.default = 127.0.0.1:{self.tls_port}",
            f"ssl_options.cacertfile = {self.certs.ca}",
            f"ssl_options.certfile = {self.certs.server_cert}",
            f"ssl_options.keyfile = {self.certs.server_key}",
            "ssl_options.verify = verify_none",
            "ssl_options.fail_if_no_peer_cert = false",
        ]

    def tls_url(self, ca_file: Path | None, **ssl_options: str) -> str:
        """amqps:// to the TLS port trusting ``ca_file`` only (None: the system's CAs, pika's default).

        ``ssl_options`` is pika's URL option: a Python dict literal, URL-encoded.
        """
        url = f"amqps://guest:guest@127.0.0.1:{self.tls_port}//"
        if ca_file is None:
            return url
        return url + "?" + urlencode({"ssl_options": repr({"ca_certs": str(ca_file), **ssl_options})})

    def start(self) -> None:
        super().start()
        self.wait_for_tls_port(30)

    def wait_for_tls_port(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while True:
            try:
                socket.create_connection(("127.0.0.1", self.tls_port), timeout=1.0).close()
                return
            except OSError:
                if time.monotonic() >= deadline:
                    raise
                time.sleep(0.1)


@pytest.fixture(scope="module")
def node() -> Iterator[TlsNode]:
    require_throwaway_node()
    if shutil.which("openssl") is None:
        if IN_CI:
            pytest.fail("the TLS tests need the openssl CLI, and CI=true requires them to run")
        pytest.skip("the TLS tests need the openssl CLI")
    node = TlsNode()
    yield from serve(node, node.remove)


@pytest.fixture
def queue(node: TlsNode) -> Iterator[str]:
    name = f"tls-{uuid.uuid4().hex[:10]}"
    yield name
    delete_queues(node.url, [name])


def short_settings(**transport_options: float) -> Settings:
    settings = Settings()
    settings.broker_transport_options = {"timeout": 5.0, **transport_options}
    return settings


def test_a_task_published_over_tls_is_fetched_and_acked_over_tls(node: TlsNode, queue: str) -> None:
    # Given an app whose broker is the TLS port, trusting the throwaway CA
    app = TaskQ("tls", broker=node.tls_url(node.certs.ca))
    app.conf.broker_transport_options = {"timeout": 5.0}
    try:
        # When it publishes a task (confirmed) and fetches it back
        sent = app.send_task("tls.echo", args=["over tls"], queue=queue)
        deliveries = app.broker.fetch([queue], 1, timeout=5.0)
        # Then the very message comes back, and the ack removes it
        assert [d.envelope.id if d.envelope else None for d in deliveries] == [sent.id]
        assert deliveries[0].redeliveries == 0
        app.broker.ack(deliveries)
        assert app.broker.fetch([queue], 1, timeout=0.5) == []
        assert app.broker.queue_length(queue) == 0
        # And the server saw one connection, TLS, on the TLS port
        listed = node.ctl("list_connections", "--no-table-headers", "ssl", "ssl_protocol", "port")
        rows = [line.split("\t") for line in listed.splitlines()]
        assert len(rows) == 1, rows
        ssl, protocol, port = rows[0]
        assert (ssl, port) == ("true", str(node.tls_port))
        assert protocol.startswith("tlsv1."), protocol
    finally:
        app.close()


def test_plain_amqp_against_the_tls_port_fails_fast_with_one_clear_line(node: TlsNode, queue: str) -> None:
    # Given a client that speaks plain AMQP to the TLS port
    plain = f"amqp://guest:guest@127.0.0.1:{node.tls_port}//"
    broker = RabbitMQBroker(plain, short_settings(publish_retry_timeout=0.5))
    try:
        started = time.monotonic()
        # When it fetches, Then the connection fails at once: that port only speaks TLS
        with pytest.raises(BrokerError) as fetching:
            broker.fetch([queue], 1, timeout=1.0)
        message = str(fetching.value)
        assert message.startswith("cannot connect to RabbitMQ: IncompatibleProtocolError"), message
        assert "a TLS port needs amqps://" in message and "\n" not in message
        # And a publish gives up after its retry time with the same cause
        with pytest.raises(PublishError, match=r"did not confirm.*IncompatibleProtocolError"):
            broker.publish(queue, Envelope({"task": "tls.echo", "id": "x", "lang": "py"}, b"[[], {}, {}]"))
        assert time.monotonic() - started < 15
    finally:
        broker.close()


@pytest.mark.parametrize(
    ("client", "cause"),
    [
        ("trusts another CA", "self-signed certificate in certificate chain"),
        ("trusts the system CAs only", "self-signed certificate in certificate chain"),
        ("expects another host name", "Hostname mismatch"),
    ],
)
def test_a_server_certificate_the_client_cannot_verify_fails_with_one_clear_line(
    node: TlsNode, queue: str, client: str, cause: str
) -> None:
    # Given a client that cannot verify the node's certificate
    urls = {
        "trusts another CA": node.tls_url(node.certs.other_ca),
        "trusts the system CAs only": node.tls_url(None),
        "expects another host name": node.tls_url(node.certs.ca, server_hostname="wrong.example"),
    }
    broker = RabbitMQBroker(urls[client], short_settings())
    try:
        started = time.monotonic()
        # When it connects, Then the handshake fails at once with one line naming the cause
        with pytest.raises(BrokerError) as fetching:
            broker.fetch([queue], 1, timeout=1.0)
        message = str(fetching.value)
        assert message.startswith("cannot connect to RabbitMQ: TLS handshake failed: [SSL: CERTIFICATE_VERIFY_FAILED]")
        assert cause in message and "\n" not in message, message
        assert time.monotonic() - started < 6
    finally:
        broker.close()
