"""Remote control within one process (the memory:// broker, used with -P threads or solo)."""

from __future__ import annotations

import queue
import threading
import time
from typing import Any

from taskq.control.mailbox import ControlRequest

_nodes: dict[str, queue.SimpleQueue[ControlRequest]] = {}
_replies: dict[str, queue.SimpleQueue[dict[str, Any]]] = {}
_lock = threading.Lock()


class MemoryMailbox:
    def _send(self, method: str, arguments: dict[str, Any], destination: list[str] | None, ticket: str | None,
              timeout: float) -> None:
        request = ControlRequest(
            method, dict(arguments), destination, ticket, {"routing_key": ticket} if ticket else None,
            time.time() + timeout if timeout else 0.0,
        )
        with _lock:
            boxes = list(_nodes.values())
        for box in boxes:
            box.put(request)

    def call(
        self, method: str, arguments: dict[str, Any], destination: list[str] | None, timeout: float,
        limit: int | None = None,
    ) -> list[dict[str, Any]]:
        ticket = f"memory-{time.monotonic_ns()}-{threading.get_ident()}"
        inbox: queue.SimpleQueue[dict[str, Any]] = queue.SimpleQueue()
        with _lock:
            _replies[ticket] = inbox
        try:
            self._send(method, arguments, destination, ticket, timeout)
            limit = limit or (len(destination) if destination else None)
            replies: list[dict[str, Any]] = []
            deadline = time.monotonic() + timeout
            while limit is None or len(replies) < limit:
                try:
                    replies.append(inbox.get(timeout=max(deadline - time.monotonic(), 0.0)))
                except queue.Empty:
                    break
            return replies
        finally:
            with _lock:
                _replies.pop(ticket, None)

    def cast(self, method: str, arguments: dict[str, Any], destination: list[str] | None) -> None:
        self._send(method, arguments, destination, None, 0)

    def name_in_use(self, hostname: str) -> bool:
        with _lock:
            return hostname in _nodes

    def node(self, hostname: str) -> MemoryNode:
        return MemoryNode(hostname)

    def close(self) -> None:
        pass


class MemoryNode:
    def __init__(self, hostname: str) -> None:
        self.hostname = hostname
        self._box: queue.SimpleQueue[ControlRequest] = queue.SimpleQueue()
        with _lock:
            _nodes[hostname] = self._box

    def poll(self, timeout: float) -> list[ControlRequest | str]:
        try:
            first = self._box.get(timeout=timeout)
        except queue.Empty:
            return []
        out: list[ControlRequest | str] = [first]
        while not self._box.empty():
            out.append(self._box.get_nowait())
        return out

    def reply(self, request: ControlRequest, hostname: str, result: Any) -> None:
        with _lock:
            inbox = _replies.get(request.ticket or "")
        if inbox is not None:
            inbox.put({hostname: result})

    def close(self) -> None:
        with _lock:
            if _nodes.get(self.hostname) is self._box:
                del _nodes[self.hostname]
