"""A big command written as gathered buffers (redis.gathered): every byte arrives in order
when the socket takes only part of them per call, a real Redis stores what was sent, and a
dropped connection still falls back to the pooled client."""

from __future__ import annotations

import os
import socket
import threading
import uuid
from collections.abc import Sequence

import redis
from hiredis import pack_command

from taskq.brokers.redis.connection import Parts, Plain, RedisConnector
from taskq.brokers.redis.gathered import write_all
from taskq.errors import BrokerError
from tests.servers import require_redis


class CountingSocket:
    """A real socket whose sendmsg calls are counted (to see that writes were partial)."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock, self.calls = sock, 0

    def sendmsg(self, buffers: Sequence[memoryview]) -> int:
        self.calls += 1
        return self.sock.sendmsg(buffers)


def test_every_byte_arrives_in_order_when_the_socket_takes_part_of_them() -> None:
    # Given a socket pair with small buffers and a reader that takes 4 KB at a time, the
    # writer with a timeout as redis-py sets one (a send then takes what fits, not all)
    writer, reader = socket.socketpair()
    writer.settimeout(30)
    writer.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
    reader.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    body = os.urandom(3_000_000)
    buffers = [b"head:", b"", memoryview(body)[7:], b"\r\n"]
    received = bytearray()

    def read() -> None:
        while chunk := reader.recv(4096):
            received.extend(chunk)

    thread = threading.Thread(target=read)
    thread.start()
    counting = CountingSocket(writer)
    try:
        # When the buffers are written
        write_all(counting, buffers)  # type: ignore[arg-type]
    finally:
        writer.shutdown(socket.SHUT_WR)
        thread.join(timeout=30)
        writer.close()
        reader.close()
    # Then the reader got exactly their concatenation, over several partial writes
    assert bytes(received) == b"head:" + body[7:] + b"\r\n"
    assert counting.calls > 1


def test_a_big_command_in_parts_is_stored_whole_by_redis() -> None:
    url = require_redis()
    key = f"gathered-{uuid.uuid4().hex}"
    conn = RedisConnector(url)
    body = os.urandom(4 * 1024 * 1024)
    try:
        # Given several big commands in parts, one in flight while the next is written
        commands = [Parts(("SET", f"{key}:{i}"), (b"%d:" % i, memoryview(body)[i:])) for i in range(3)]
        # When they go through the thread's own connection
        assert conn.direct_many(BrokerError, "test", commands) == [b"OK"] * 3
        # Then Redis holds each one whole
        for i in range(3):
            assert conn.client.get(f"{key}:{i}") == b"%d:" % i + body[i:]
    finally:
        conn.client.delete(*(f"{key}:{i}" for i in range(3)))
        conn.close()


def test_a_connection_killed_by_the_server_falls_back_to_the_pooled_client() -> None:
    url = require_redis()
    key = f"gathered-{uuid.uuid4().hex}"
    conn = RedisConnector(url)
    admin = redis.Redis.from_url(url)
    body = os.urandom(300_000)
    try:
        # Given the thread's own connection, closed by the server
        conn.direct(BrokerError, "test", "CLIENT", "SETNAME", key)
        assert conn.direct(BrokerError, "test", "CLIENT", "KILL", "SKIPME", "no", "ID", _client_id(admin, key)) == 1
        # When a big command in parts is sent on it
        replies = conn.direct_many(BrokerError, "test", [Parts(("SET", key), (b"x", body))])
        # Then it still lands (the pooled client's reply is True, the direct connection's b"OK")
        assert replies in ([True], [b"OK"])
        assert admin.get(key) == b"x" + body
    finally:
        admin.delete(key)
        admin.close()
        conn.close()


PLAIN = [
    ("XADD", "taskq:q:bench:0", "*", "m", b"\x01{}\n" + os.urandom(200)),
    ("SET", "k\u00e9y \u2603", b""),  # non-ASCII text, spaces inside an argument, an empty value
    ("GET", b"\x00\r\n"),
]


def test_a_plain_command_is_packed_as_redis_py_packs_it() -> None:
    packer = redis.Connection()
    for command in PLAIN:
        assert pack_command(Plain(command)) == b"".join(packer.pack_command(*command))


def test_a_plain_command_lands_and_falls_back_to_the_pooled_client() -> None:
    url = require_redis()
    key = f"plain-{uuid.uuid4().hex}"
    conn = RedisConnector(url)
    admin = redis.Redis.from_url(url)
    try:
        # Given plain commands on the thread's own connection
        assert conn.direct_many(BrokerError, "test", [Plain(("SET", key, b"1\r\n")), Plain(("GET", key))]) == [
            b"OK", b"1\r\n"
        ]  # fmt: skip
        # When the server closed that connection, a plain command still lands
        conn.direct(BrokerError, "test", "CLIENT", "SETNAME", key)
        assert conn.direct(BrokerError, "test", "CLIENT", "KILL", "SKIPME", "no", "ID", _client_id(admin, key)) == 1
        assert conn.direct_many(BrokerError, "test", [Plain(("SET", key, "\u00e9"))]) in ([True], [b"OK"])
        assert admin.get(key) == "\u00e9".encode()
    finally:
        admin.delete(key)
        admin.close()
        conn.close()


def _client_id(admin: redis.Redis, name: str) -> int:
    [client] = [c for c in admin.client_list() if c["name"] == name]
    return int(client["id"])
