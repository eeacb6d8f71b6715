"""A command given as several buffers (connection.Parts) written with one ``sendmsg`` call.

redis-py writes a packed command's pieces with one ``sendall`` each: for a big message that
is four system calls (RESP framing, the entry's header, the body, the closing CRLF), and on
a connection with TCP_NODELAY each small one leaves as a segment of its own that wakes
Redis for a few bytes. ``sendmsg`` hands the kernel all of them at once (gather I/O, still
no copy of the body): the producer's CPU per 100 KB ``delay()`` fell by about a tenth
(``python -m bench.payload_enqueue``; docs/performance.md, "Big arguments").

TLS sockets have no ``sendmsg``; they, and any connection whose socket is not a plain one,
keep redis-py's own writes.
"""

from __future__ import annotations

import socket
from collections.abc import Sequence

import redis
from redis.connection import Connection


def send_gathered(conn: Connection, buffers: Sequence[bytes | memoryview], check_health: bool) -> None:
    """Write ``buffers`` to ``conn`` in order, as redis-py's ``send_packed_command`` does
    (connect first, errors as redis-py raises them, the connection dropped after a failed
    write), with as few system calls as the socket accepts."""
    conn.send_packed_command([], check_health=check_health)  # type: ignore[no-untyped-call]  # connects, checks
    sock = getattr(conn, "_sock", None)
    if type(sock) is not socket.socket:  # TLS (ssl.SSLSocket has no sendmsg), or another kind
        conn.send_packed_command(list(buffers), check_health=False)  # type: ignore[no-untyped-call]
        return
    try:
        write_all(sock, buffers)
    except TimeoutError as exc:  # socket.timeout is TimeoutError
        conn.disconnect()  # type: ignore[no-untyped-call]
        raise redis.TimeoutError("Timeout writing to socket") from exc
    except OSError as exc:
        conn.disconnect()  # type: ignore[no-untyped-call]
        raise redis.ConnectionError(f"Error {exc.errno} while writing to socket. {exc.strerror}.") from exc
    except BaseException:
        conn.disconnect()  # type: ignore[no-untyped-call]  # part of a command may have gone: out of step
        raise


def write_all(sock: socket.socket, buffers: Sequence[bytes | memoryview]) -> None:
    """``sendmsg`` until every byte of ``buffers`` is written: a full socket buffer takes part
    of them (a big body under a slow reader), and the rest goes from where it stopped."""
    views = [memoryview(b).cast("B") for b in buffers if len(b)]
    while views:
        sent = sock.sendmsg(views)
        while sent:
            first = views[0]
            if sent < len(first):
                views[0] = first[sent:]
                break
            sent -= len(first)
            views.pop(0)
