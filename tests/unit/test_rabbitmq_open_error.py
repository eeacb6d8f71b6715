"""Why a RabbitMQ connection did not open, in one line, from pika's nested wrappers (no server)."""

from __future__ import annotations

import ssl

import pika.exceptions
from pika.adapters.utils.connection_workflow import (
    AMQPConnectionWorkflowFailed,
    AMQPConnectorAMQPHandshakeError,
    AMQPConnectorSocketConnectError,
    AMQPConnectorTransportSetupError,
)

from taskq.brokers.rabbitmq.link import open_error_reason


def test_a_refused_certificate_names_the_tls_handshake_and_the_cause() -> None:
    # pika hands on_open_error the workflow failure, whose last attempt wraps the SSL error
    cause = ssl.SSLCertVerificationError(1, "[SSL: CERTIFICATE_VERIFY_FAILED] certificate verify failed: x")
    error = AMQPConnectionWorkflowFailed([AMQPConnectorTransportSetupError(cause)])
    assert str(error) == ""  # what taskq used to show: only the class name
    assert open_error_reason(error) == (
        "TLS handshake failed: [SSL: CERTIFICATE_VERIFY_FAILED] certificate verify failed: x"
    )


def test_a_refused_tcp_connect_is_unwrapped_from_three_layers() -> None:
    refused = ConnectionRefusedError(111, "Connection refused")
    failed = AMQPConnectionWorkflowFailed([AMQPConnectorSocketConnectError(refused)])
    error = pika.exceptions.AMQPConnectionError(failed)  # pika adds this layer for socket errors
    assert open_error_reason(error) == "TCP connect failed: [Errno 111] Connection refused"


def test_plain_amqp_to_a_tls_port_hints_at_amqps() -> None:
    error = pika.exceptions.IncompatibleProtocolError("StreamLostError: ('Stream connection lost',)")
    reason = open_error_reason(error)
    assert reason.startswith("IncompatibleProtocolError: The protocol returned by the server is not supported")
    assert reason.endswith("(is it an AMQP port? a TLS port needs amqps://)")


def test_the_last_attempt_counts_and_the_text_stays_on_one_line() -> None:
    first = AMQPConnectorAMQPHandshakeError(pika.exceptions.ProbableAuthenticationError("ACCESS_REFUSED"))
    last = AMQPConnectorSocketConnectError(OSError("no route\n  to host"))
    assert open_error_reason(AMQPConnectionWorkflowFailed([first, last])) == "TCP connect failed: no route to host"
    assert open_error_reason(AMQPConnectionWorkflowFailed([last, first])).startswith(
        "AMQP handshake failed: ProbableAuthenticationError: Client was disconnected"
    )
    assert open_error_reason("already a reason") == "already a reason"
