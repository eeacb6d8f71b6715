"""RabbitMQ's wire mapping without a server: frames, envelopes, delay levels, URLs, queue arguments."""

from __future__ import annotations

import datetime
import struct
from decimal import Decimal
from typing import Any

import pika
import pika.frame
import pika.spec
import pytest

from taskq.brokers.rabbitmq import connection_parameters
from taskq.brokers.rabbitmq.frames import properties, publish_frames
from taskq.brokers.rabbitmq.queues import kind_of
from taskq.brokers.rabbitmq.wire import (
    DELAY_UNIT,
    ETA_HEADER,
    check_queue_name,
    delay_level,
    delay_queue_arguments,
    delay_ttl_ms,
    from_amqp,
    queue_arguments,
    to_amqp,
)
from taskq.config import Settings
from taskq.envelope import Envelope
from taskq.errors import ConfigurationError

CELERY_HEADERS: dict[str, Any] = {
    "lang": "py",
    "task": "tasks.add",
    "id": "6f1c",
    "root_id": "6f1c",
    "parent_id": None,
    "group": None,
    "retries": 0,
    "eta": None,
    "expires": "2026-01-01T00:00:00+00:00",
    "timelimit": [30.5, None],
    "argsrepr": "(2, 3)",
    "kwargsrepr": "{}",
    "origin": "gen1@host",
    "ignore_result": False,
    "stamps": {},
    "big": 2**40,
    "raw": b"\x00\x01",
}


def decode(data: bytes) -> list[pika.frame.Frame]:
    frames = []
    while data:
        used, frame = pika.frame.decode_frame(data)
        assert frame is not None and used
        frames.append(frame)
        data = data[used:]
    return frames


def test_publish_frames_decode_as_pika_reads_them() -> None:
    # Given a Celery-shaped envelope with a float time limit (pika itself cannot encode floats)
    envelope = Envelope(CELERY_HEADERS, b"[[2, 3], {}, {}]", properties={"correlation_id": "6f1c", "priority": 7})
    props = to_amqp(envelope)
    # When taskq encodes the publish frames, with a body split across frames
    method, header, *bodies = decode(publish_frames(3, 8, "", "celery", envelope.body, props))
    # Then a standard AMQP decoder reads exactly the message that was meant
    assert isinstance(method.method, pika.spec.Basic.Publish)
    assert (method.channel_number, method.method.routing_key, method.method.mandatory) == (3, "celery", True)
    got = header.properties
    assert (got.content_type, got.content_encoding, got.delivery_mode) == ("application/json", "utf-8", 2)
    assert (got.correlation_id, got.priority) == ("6f1c", 7)
    assert got.headers["big"] == 2**40 and got.headers["expires"] == CELERY_HEADERS["expires"]
    assert got.headers["raw"] == b"\x00\x01" and got.headers["ignore_result"] is False
    assert header.body_size == len(envelope.body)
    assert b"".join(b.fragment for b in bodies) == envelope.body and len(bodies) == 2


def test_floats_go_as_doubles_as_celery_s_client_reads_them() -> None:
    from amqp.serialization import decode_properties_basic  # type: ignore[import-untyped]

    envelope = Envelope({"id": "x", "timelimit": [30.5, None]}, b"", properties={"priority": 3})
    flags, values = properties(to_amqp(envelope))
    decoded, _ = decode_properties_basic(struct.pack(">H", flags) + values, 0)
    assert decoded["application_headers"] == {"id": "x", "timelimit": [30.5, None]} and decoded["priority"] == 3
    # pika, taskq's own client, reads a double's integer part only (pika's decoder): documented
    _, header, *_ = decode(publish_frames(1, 100, "", "q", b"", to_amqp(envelope)))
    assert header.properties.headers["timelimit"] == [30, None]


def test_envelope_round_trip_through_amqp_properties() -> None:
    headers = {**CELERY_HEADERS, "timelimit": [30, None]}
    envelope = Envelope(headers, b"body", "application/x-msgpack", "binary", {"reply_to": "r", "priority": 0})
    _, header, *_ = decode(publish_frames(1, 131064, "", "q", envelope.body, to_amqp(envelope)))
    back, added = from_amqp(header.properties, envelope.body)
    assert back == envelope and added == {}


def test_taskq_and_rabbitmq_headers_are_taken_off_the_envelope() -> None:
    props = pika.BasicProperties(
        headers={"id": "a", ETA_HEADER: 1000, "x-death": [{"count": 1}], "x-delivery-count": 2},
        priority=None,
    )
    envelope, added = from_amqp(props, b"")
    assert envelope.headers == {"id": "a"} and envelope.properties == {}
    assert set(added) == {ETA_HEADER, "x-death", "x-delivery-count"}


def test_other_header_types() -> None:
    when = datetime.datetime(2026, 1, 2, 3, 4, 5, tzinfo=datetime.timezone.utc)
    props = pika.BasicProperties(headers={"d": Decimal("1.25"), "t": when, "nested": {"a": [1, "x", True]}})
    _, header, _ = decode(publish_frames(1, 100, "ex", "rk", b"x", props))
    assert header.properties.headers == {"d": Decimal("1.25"), "t": when, "nested": {"a": [1, "x", True]}}
    with pytest.raises(TypeError):
        publish_frames(1, 100, "", "q", b"", pika.BasicProperties(headers={"bad": object()}))


@pytest.mark.parametrize(
    ("remaining", "level"),
    [(0.001, None), (0.05, 0), (DELAY_UNIT, 0), (1.0, 3), (7200.0, 16), (10.0**9, 28)],
)
def test_delay_level_never_overshoots_beyond_one_unit(remaining: float, level: int | None) -> None:
    assert delay_level(remaining) == level
    if level is not None and remaining >= DELAY_UNIT:
        assert delay_ttl_ms(level) / 1000 <= remaining  # arrives early at worst, then goes down a level


def test_delay_queue_dead_letters_into_its_target() -> None:
    args = delay_queue_arguments("emails", 4)
    assert args["x-message-ttl"] == 1600 and args["x-dead-letter-exchange"] == ""
    assert args["x-dead-letter-routing-key"] == "emails" and args["x-expires"] > args["x-message-ttl"]


def test_queue_arguments_priority_by_default_override_per_queue_quorum_backstop() -> None:
    settings = Settings()
    settings.max_deliveries = 5
    settings.queue_arguments = {"celery": {}, "orders": {"x-queue-type": "quorum"}}
    assert queue_arguments("emails", settings) == {"x-max-priority": 10}
    assert queue_arguments("celery", settings) == {}
    quorum = queue_arguments("orders", settings)
    assert quorum["x-delivery-limit"] == 7 and quorum["x-dead-letter-routing-key"] == "orders.dead"
    assert [kind_of(a) for a in ({"x-max-priority": 10}, {}, quorum, {"x-queue-type": "stream"})] == [
        "priority",
        "classic",
        "quorum",
        "foreign",
    ]


@pytest.mark.parametrize(
    ("url", "vhost", "heartbeat"),
    [
        ("amqp://guest:guest@127.0.0.1:5672//", "/", None),
        ("amqp://guest:guest@127.0.0.1:5672/", "/", None),
        ("amqp://h", "/", None),
        ("amqp://h/%2F", "/", None),
        ("amqp://h/shop?heartbeat=2", "shop", 2),
    ],
)
def test_urls_read_the_vhost_as_celery_does(url: str, vhost: str, heartbeat: int | None) -> None:
    params = connection_parameters(url)
    assert params.virtual_host == vhost and params.heartbeat == heartbeat


def test_bad_url_is_a_configuration_error() -> None:
    with pytest.raises(ConfigurationError):
        connection_parameters("amqp://h/?heartbeat=notanumber")


@pytest.mark.parametrize(
    ("name", "text"),
    [("amq.bad", "reserves names starting with 'amq.'"), ("", "empty queue name"), ("q" * 241, "at most 240")],
)
def test_queue_names_rabbitmq_refuses_are_configuration_errors(name: str, text: str) -> None:
    with pytest.raises(ConfigurationError, match=text):
        check_queue_name(name)
    assert check_queue_name("q" * 240) == "q" * 240 and check_queue_name("amqx.ok") == "amqx.ok"
