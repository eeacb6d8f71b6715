"""How taskq's envelopes, queues and delays look on RabbitMQ (no I/O here).

* An Envelope maps onto one AMQP message exactly as Celery's protocol v2 puts it there:
  ``headers`` become the application headers, ``properties`` the basic properties
  (correlation_id, reply_to, priority, ...), ``content_type``/``content_encoding`` theirs,
  and ``body`` the body bytes. Messages are persistent (delivery_mode 2).
* Queues taskq creates are durable with ``x-max-priority: 10`` unless
  ``settings.queue_arguments[queue]`` says otherwise.
* A delayed message waits in a TTL queue ``<queue>.taskq-delay.<level>`` that dead-letters
  into its target queue. Level ``n`` holds messages for ``DELAY_UNIT * 2**n`` seconds; each
  queue has one TTL, so its messages expire in order (RabbitMQ only expires the head).
  The message carries its eta; arriving early, it is sent to the next level down.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from decimal import Decimal
from typing import Any

import pika

from taskq.config import Settings
from taskq.envelope import Envelope
from taskq.errors import ConfigurationError

MAX_PRIORITY = 10
DELAY_UNIT = 0.1  # seconds held by level 0; a delay shorter than this is not worth a hop
DUE_SLACK = 0.005  # a message this close to its eta is due
MAX_DELAY_LEVEL = 28  # level 28 holds ~310 days; longer delays take several trips
ETA_HEADER = "x-taskq-eta"  # unix time in milliseconds (pika cannot encode floats)
REASON_HEADER = "x-taskq-reason"
FAILED_AT_HEADER = "x-taskq-failed-at"
ORIGIN_HEADER = "x-taskq-queue"
DEAD_SUFFIX = ".dead"
DELAY_INFIX = ".taskq-delay."
# Headers RabbitMQ adds when it dead-letters (our delay queues) or counts (quorum queues).
_DEATH_HEADERS = (
    "x-death",
    "x-first-death-exchange",
    "x-first-death-queue",
    "x-first-death-reason",
    "x-last-death-exchange",
    "x-last-death-queue",
    "x-last-death-reason",
)
DELIVERY_COUNT_HEADER = "x-delivery-count"
_PASSED_PROPERTIES = (
    "correlation_id",
    "reply_to",
    "priority",
    "expiration",
    "message_id",
    "timestamp",
    "type",
    "user_id",
    "app_id",
    "cluster_id",
)


# -- names ------------------------------------------------------------------------------
def dead_queue(queue: str) -> str:
    return queue + DEAD_SUFFIX


def delay_queue(queue: str, level: int) -> str:
    return f"{queue}{DELAY_INFIX}{level}"


def exchange_target(exchange: str, routing_key: str) -> str:
    """The name delay queues of messages for an exchange are named after (checked as a queue's)."""
    return check_queue_name(f"{exchange}.exchange.{routing_key}")


def is_internal(queue: str) -> bool:
    return queue.endswith(DEAD_SUFFIX) or DELAY_INFIX in queue


def check_queue_name(queue: str) -> str:
    """The name, if RabbitMQ will let taskq declare it and its delay queues; else one clear
    ConfigurationError (RabbitMQ's own answer, a closed channel, would be retried forever)."""
    if not queue:
        raise ConfigurationError("an empty queue name: RabbitMQ would invent one per declare")
    if queue.startswith("amq."):
        raise ConfigurationError(f"queue name {queue!r}: RabbitMQ reserves names starting with 'amq.'")
    room = 255 - len(delay_queue("", MAX_DELAY_LEVEL))
    if len(queue.encode("utf-8")) > room:
        raise ConfigurationError(
            f"queue name {queue[:40]!r}... is {len(queue.encode())} bytes: RabbitMQ allows 255, and taskq's "
            f"delay queues add {255 - room}, so at most {room}"
        )
    return queue


# -- queue arguments --------------------------------------------------------------------
def queue_arguments(queue: str, settings: Settings, declared: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """What taskq declares a queue with: x-max-priority 10, or the per-queue override
    (``queue_arguments``), else the ``queue_arguments`` of its ``Queue`` in task_queues.

    A quorum queue gets RabbitMQ's own delivery-limit above ``max_deliveries`` (a backstop:
    the worker dead-letters first) and dead-letters into taskq's dead-letter queue.
    """
    if queue in settings.queue_arguments:
        arguments = dict(settings.queue_arguments[queue])
    elif declared is not None:
        arguments = dict(declared)
    else:
        arguments = {"x-max-priority": MAX_PRIORITY}
    if arguments.get("x-queue-type") == "quorum":
        arguments.setdefault("x-delivery-limit", settings.max_deliveries + 2)
        arguments.setdefault("x-dead-letter-exchange", "")
        arguments.setdefault("x-dead-letter-routing-key", dead_queue(queue))
    return arguments


def describe_costs(kind: str) -> str:
    """The features a queue of this kind lacks, for the one log line when adopting it."""
    return {
        "priority": "none",
        "classic": "no priorities (priority is ignored there)",
        "quorum": "no priorities (publishing priority > 0 there is an error)",
        "foreign": "unknown arguments: priorities and delivery limits may not apply",
    }[kind]


def delay_queue_arguments(queue: str, level: int, exchange: str = "") -> dict[str, Any]:
    """A delay level's queue: its messages expire into ``queue`` (or, with ``exchange``, into
    that exchange with ``queue`` as the routing key)."""
    ttl_ms = delay_ttl_ms(level)
    return {
        "x-message-ttl": ttl_ms,
        "x-dead-letter-exchange": exchange,
        "x-dead-letter-routing-key": queue,
        # An idle delay queue goes away by itself, long after its last message left.
        "x-expires": ttl_ms + 3_600_000,
    }


def delay_ttl_ms(level: int) -> int:
    return int(DELAY_UNIT * 1000) << level


def delay_level(remaining: float) -> int | None:
    """The longest level that does not overshoot ``remaining`` seconds; None: due now.

    Under one unit the message takes level 0 and runs up to one unit late, never early.
    """
    if remaining <= DUE_SLACK:
        return None
    if remaining < DELAY_UNIT:
        return 0
    return min(math.floor(math.log2(remaining / DELAY_UNIT)), MAX_DELAY_LEVEL)


# -- envelopes ------------------------------------------------------------------------------
def to_amqp(envelope: Envelope, extra_headers: dict[str, Any] | None = None) -> pika.BasicProperties:
    headers = dict(envelope.headers)  # floats stay floats: frames.py sends them as 'd'

    if extra_headers:
        headers.update(extra_headers)
    passed = {k: v for k, v in envelope.properties.items() if k in _PASSED_PROPERTIES and v is not None}
    if "priority" in passed:
        passed["priority"] = int(passed["priority"])
    return pika.BasicProperties(
        content_type=envelope.content_type,
        content_encoding=envelope.content_encoding,
        headers=headers,
        delivery_mode=2,
        **passed,
    )


def from_amqp(properties: pika.BasicProperties, body: bytes) -> tuple[Envelope, dict[str, Any]]:
    """The envelope as sent, and the headers taskq or RabbitMQ added (removed from it)."""
    headers = {str(k): python_value(v) for k, v in (properties.headers or {}).items()}
    added: dict[str, Any] = {}
    for key in (ETA_HEADER, DELIVERY_COUNT_HEADER, REASON_HEADER, FAILED_AT_HEADER, ORIGIN_HEADER):
        if key in headers:
            added[key] = headers.pop(key)
    if ETA_HEADER in added:  # it came through our delay queues: their x-death trail is ours
        for key in _DEATH_HEADERS:
            if key in headers:
                added[key] = headers.pop(key)
    passed = {k: getattr(properties, k) for k in _PASSED_PROPERTIES if getattr(properties, k) is not None}
    envelope = Envelope(
        headers=headers,
        body=bytes(body),
        content_type=properties.content_type or "application/json",
        content_encoding=properties.content_encoding or "utf-8",
        properties=passed,
    )
    return envelope, added


def amqp_value(value: Any) -> Any:
    """A value pika itself can encode (it has no float type): floats go as int or Decimal.

    Only for pika's own publish path; frames.py encodes floats as doubles.
    """
    if isinstance(value, float):
        if math.isfinite(value) and value.is_integer() and abs(value) < 2**63:
            return int(value)
        return _float_as_decimal(value)
    if isinstance(value, dict):
        return {str(k): amqp_value(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [amqp_value(v) for v in value]
    return value


def _float_as_decimal(value: float) -> Decimal | str:
    if not math.isfinite(value):
        return str(value)
    # AMQP decimals are a 32-bit integer and a scale: keep as many digits as fit.
    for places in range(9, -1, -1):
        scaled = round(value * 10**places)
        if abs(scaled) < 2**31:
            return Decimal(scaled).scaleb(-places)
    return str(value)


def python_value(value: Any) -> Any:
    """Undo amqp_value and pika's decoding quirks: Decimal -> float, bytes stay bytes."""
    if isinstance(value, Decimal):
        return float(value)
    if isinstance(value, dict):
        return {str(k): python_value(v) for k, v in value.items()}
    if isinstance(value, list):
        return [python_value(v) for v in value]
    return value
