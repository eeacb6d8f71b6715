"""Content header frames pika cannot decode become stand-ins the worker dead-letters."""

from __future__ import annotations

import struct

import pika.frame
import pytest

from taskq.brokers.rabbitmq.decode import (
    MAX_HEADER_DEPTH,
    RAW_HEADERS_HEADER,
    UNDECODABLE_HEADER,
    nests_deeper,
    read_frame,
    undecodable_reason,
)
from tests.amqp_raw import header_frame, headers_with, nested_table, properties_bytes

TASK_HEADERS = {"task": "t.add", "id": "abc", "lang": "py"}


def test_a_header_too_deep_for_pika_becomes_a_stand_in_with_the_rest_intact() -> None:
    # Given a header frame whose headers nest 3,000 tables deep (pika's decoder recurses)
    table = headers_with(TASK_HEADERS, "deep", nested_table(3000))
    frame_bytes = header_frame(5, 42, properties_bytes(table, correlation_id="abc"))
    with pytest.raises(RecursionError):
        pika.frame.decode_frame(frame_bytes + b"more")
    # When taskq reads it
    consumed, frame = read_frame(frame_bytes + b"more")
    # Then it is one frame, on the same channel, with the other properties and the raw table
    assert consumed == len(frame_bytes)
    assert isinstance(frame, pika.frame.Header)
    assert (frame.channel_number, frame.body_size) == (5, 42)
    props = frame.properties
    assert (props.correlation_id, props.content_type, props.delivery_mode) == ("abc", "application/json", 2)
    assert props.headers[RAW_HEADERS_HEADER] == table[4:]
    assert undecodable_reason(props) == "its AMQP headers cannot be decoded (RecursionError)"
    # A table too big to fit a dead letter's frame is dropped; the reason stays.
    _, small = read_frame(frame_bytes, raw_limit=len(table) - 5)
    assert isinstance(small, pika.frame.Header)
    assert RAW_HEADERS_HEADER not in small.properties.headers and UNDECODABLE_HEADER in small.properties.headers


def test_headers_deeper_than_the_limit_are_refused_even_when_pika_decodes_them() -> None:
    too_deep = header_frame(1, 0, properties_bytes(headers_with(TASK_HEADERS, "d", nested_table(MAX_HEADER_DEPTH))))
    _, frame = read_frame(too_deep)
    assert isinstance(frame, pika.frame.Header)
    assert undecodable_reason(frame.properties) == f"its AMQP headers nest deeper than {MAX_HEADER_DEPTH} levels"
    # One level less (the top table counts as one) is a normal message.
    fits = header_frame(1, 0, properties_bytes(headers_with(TASK_HEADERS, "d", nested_table(MAX_HEADER_DEPTH - 2))))
    _, frame = read_frame(fits)
    assert isinstance(frame, pika.frame.Header)
    assert undecodable_reason(frame.properties) is None
    assert frame.properties.headers["task"] == "t.add"


def test_a_malformed_table_becomes_a_stand_in_and_a_broken_stream_still_raises() -> None:
    bad_type = struct.pack(">I", 3) + b"\x01kZ"  # field type 'Z' does not exist
    _, frame = read_frame(header_frame(1, 7, properties_bytes(bad_type)))
    assert isinstance(frame, pika.frame.Header) and frame.body_size == 7
    assert UNDECODABLE_HEADER in frame.properties.headers
    assert RAW_HEADERS_HEADER in frame.properties.headers
    # A method frame that cannot be decoded is not a message: the connection fails as before.
    with pytest.raises(KeyError):  # no such method id
        read_frame(struct.pack(">BHL", 1, 1, 4) + b"\xff\xff\xff\xff" + b"\xce")
    # An incomplete frame waits for more bytes.
    assert read_frame(header_frame(1, 0, properties_bytes(bad_type))[:-3]) == (0, None)


def test_nests_deeper_counts_tables_and_arrays_without_recursing() -> None:
    deep: dict[str, object] = {}
    node = deep
    for _ in range(100_000):  # far past the recursion limit
        child: dict[str, object] = {}
        node["n"] = [child]
        node = child
    assert nests_deeper(deep, 64)
    assert not nests_deeper({"a": [1, {"b": 2}]}, 3)
    assert nests_deeper({"a": [1, {"b": {}}]}, 3)
    assert not nests_deeper("flat", 0)
