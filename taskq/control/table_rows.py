"""What the table-backed mailboxes (SQLite, PostgreSQL) share: a request's and a reply's
stored form (kombu pidbox's shape, mailbox.py), reading them back, and collecting replies.

A request row holds its headers and body as JSON; a reply row its ticket and
``{hostname: result}``. Rows older than ``KEEP_SECONDS`` are deleted by the next client call.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from typing import Any

from taskq.control.mailbox import ControlRequest, parse_request

KEEP_SECONDS = 60.0


def request_row(
    method: str, arguments: dict[str, Any], destination: list[str] | None, ticket: str | None, timeout: float
) -> tuple[str, str]:
    """The (headers, body) JSON of a request; with a ticket, replies are expected."""
    body: dict[str, Any] = {"method": method, "arguments": arguments, "destination": destination,
                            "pattern": None, "matcher": None}
    if ticket is not None:
        body.update(ticket=ticket, reply_to={"exchange": "reply.celery.pidbox", "routing_key": ticket})
    headers = {"clock": 0, "expires": time.time() + timeout if timeout else 0}
    return json.dumps(headers), json.dumps(body)


def decode_requests(rows: Sequence[tuple[int, str, str]]) -> list[ControlRequest | str]:
    """The requests in (id, headers, body) rows; a str describes a malformed one."""
    out: list[ControlRequest | str] = []
    for _, headers, body in rows:
        try:
            out.append(parse_request(json.loads(body), json.loads(headers)))
        except ValueError as exc:
            out.append(f"undecodable: {exc}")
    return out


def reply_row(request: ControlRequest, hostname: str, result: Any) -> tuple[str, str] | None:
    """The (ticket, body) of a reply, or None when the request expects none."""
    if request.reply_to is None or request.ticket is None:
        return None
    return request.ticket, json.dumps({hostname: result}, default=repr)


def decode_replies(rows: Sequence[tuple[int, str]]) -> list[dict[str, Any]]:
    replies = []
    for _, body in rows:
        try:
            reply = json.loads(body)
        except ValueError:
            continue
        if isinstance(reply, dict):
            replies.append(reply)
    return replies


def collect(
    read_new: Callable[[float], list[dict[str, Any]]], timeout: float, destination: list[str] | None,
    limit: int | None,
) -> list[dict[str, Any]]:
    """Replies from ``read_new(seconds_left)`` until the timeout, or until ``limit`` (by
    default one per named destination) have come."""
    limit = limit or (len(destination) if destination else None)
    replies: list[dict[str, Any]] = []
    deadline = time.monotonic() + timeout
    while (left := deadline - time.monotonic()) > 0 and (limit is None or len(replies) < limit):
        replies.extend(read_new(left))
    return replies
