"""The ResultBackend: task state and result by id, as template methods.

The public logic (the Celery-compatible result document, expiry, waiting) lives here
once; a backend implements five small primitives on keys and bytes:

* ``_get(key)``, ``_set(key, value, ttl)``, ``_delete(key)``
* ``_incr(key, ttl)``: an atomic counter (delivery counts, later chord counting)
* ``_wait(key, timeout)``: block until the key may have changed; the default polls, a
  backend that can be notified (Redis pub/sub) overrides it.

Chord counting is one more small primitive, optional (``supports_chords``):
``_chord_add(key, member, value, ttl)`` records ``value`` under ``member`` once (a second
call for the same member changes nothing) and returns how many members the key holds, in
one atomic step; ``_chord_members(key)`` reads them back. See taskq/canvas/chords.py.

The result document is Celery's: ``{"status", "result", "traceback", "children",
"date_done", "task_id"}`` under ``celery-task-meta-<id>``, so either library reads the
other's results.
"""

from __future__ import annotations

import json
import time
from abc import ABC, abstractmethod
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

from taskq import bigjson, states
from taskq.errors import InvalidResult, TimeoutError

if TYPE_CHECKING:
    from taskq.config import Settings

META_PREFIX = "celery-task-meta-"
# json.dumps with separators builds a JSONEncoder per call: one, reused (same output, same errors).
_ENCODE_META = json.JSONEncoder(separators=(",", ":")).encode
GROUP_STEM = "celery-taskset-meta-"  # Celery's key of a saved group (and of its chord's ".s" size)


@dataclass(frozen=True)
class ChordPart:
    """One finished header task of a chord, as its worker recorded it."""

    index: int
    task_id: str
    state: str
    result: Any


class ResultBackend(ABC):
    url: str
    poll_interval = 0.05

    def __init__(self, url: str, settings: Settings) -> None:
        self.url = url
        self.settings = settings
        self.expires = settings.result_expires
        self.prefix = settings.result_key_prefix

    # -- primitives -------------------------------------------------------------------
    @abstractmethod
    def _get(self, key: str) -> bytes | None: ...

    @abstractmethod
    def _set(self, key: str, value: bytes, ttl: float) -> None: ...

    @abstractmethod
    def _delete(self, key: str) -> None: ...

    @abstractmethod
    def _incr(self, key: str, ttl: float) -> int: ...

    supports_chords = False  # True where _chord_add/_chord_members are implemented

    def _chord_add(self, key: str, member: str, value: bytes, ttl: float) -> int:
        """Store ``value`` under ``member`` of ``key`` unless the member is there already,
        and return the number of members, as ONE atomic step."""
        raise NotImplementedError(f"{type(self).__name__} cannot count chords")

    def _chord_members(self, key: str) -> list[bytes]:
        raise NotImplementedError(f"{type(self).__name__} cannot count chords")

    def _chord_delete(self, key: str) -> None:
        self._delete(key)

    def _set_many(self, items: list[tuple[str, bytes]], ttl: float) -> None:
        """Several writes; a backend that can batch them in one round trip overrides this."""
        for key, value in items:
            self._set(key, value, ttl)

    def _wait(self, key: str, timeout: float) -> None:
        time.sleep(min(self.poll_interval, max(timeout, 0.0)))

    def cleanup(self) -> int:
        """Delete expired entries where the store does not expire them itself."""
        return 0

    def close(self) -> None:  # noqa: B027 - optional hook; most backends have nothing to release
        """Release connections; the backend reconnects on next use."""

    # -- public logic -----------------------------------------------------------------
    def key_for(self, task_id: str) -> str:
        return self.prefix + task_id

    def destination(self, task_id: str, reply_to: str) -> str:
        """Where a worker writes the state of a task whose message named ``reply_to``: the
        task's key here; rpc:// sends it to that reply queue instead."""
        return self.key_for(task_id)

    def reply_queue(self) -> str:
        """The ``reply_to`` of messages sent now; "" where results are stored by id."""
        return ""

    @staticmethod
    def encode_meta(meta: dict[str, Any]) -> bytes:
        """Celery's document: compact JSON, ASCII only (a big string result is copied, not
        escaped a character at a time: bigjson, the same bytes)."""
        if bigjson.has_big_string(meta.values()):
            return bigjson.dumps(meta, ensure_ascii=True)
        return _ENCODE_META(meta).encode()

    @staticmethod
    def build_meta(
        task_id: str,
        state: str,
        result: Any = None,
        traceback: str | None = None,
        **extra: Any,
    ) -> dict[str, Any]:
        meta: dict[str, Any] = {
            "status": state,
            "result": result,
            "traceback": traceback,
            "children": [],
            "date_done": datetime.now(timezone.utc).isoformat() if state in states.READY_STATES else None,
            "task_id": task_id,
        }
        meta.update(extra)
        return meta

    def prepare(
        self,
        task_id: str,
        state: str,
        result: Any = None,
        traceback: str | None = None,
        *,
        reply_to: str = "",
        **extra: Any,
    ) -> tuple[str, bytes]:
        """The key (``destination``) and encoded document; TypeError/ValueError when the
        result is not serializable."""
        meta = self.build_meta(task_id, state, result, traceback, **extra)
        return self.destination(task_id, reply_to), self.encode_meta(meta)

    def store(
        self,
        task_id: str,
        state: str,
        result: Any = None,
        traceback: str | None = None,
        *,
        reply_to: str = "",
        **extra: Any,
    ) -> None:
        key, value = self.prepare(task_id, state, result, traceback, reply_to=reply_to, **extra)
        self._set(key, value, self.expires)

    def store_many(self, prepared: list[tuple[str, bytes]]) -> None:
        """Write documents made by ``prepare`` (the worker batches finished tasks' results)."""
        if prepared:
            self._set_many(prepared, self.expires)

    def get_meta(self, task_id: str) -> dict[str, Any]:
        raw = self._get(self.key_for(task_id))
        if raw is None:
            return {"status": states.PENDING, "result": None, "traceback": None, "task_id": task_id}
        return decode_meta(task_id, raw)

    def wait_for(self, task_id: str, timeout: float | None = None) -> dict[str, Any]:
        """The result document once the task is ready; TimeoutError after ``timeout``."""
        deadline = None if timeout is None else time.monotonic() + timeout
        key = self.key_for(task_id)
        while True:
            meta = self.get_meta(task_id)
            if meta["status"] in states.READY_STATES:
                return meta
            remaining = 3600.0 if deadline is None else deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError(f"task {task_id} not ready after {timeout}s (state {meta['status']})")
            self._wait(key, remaining)

    def forget(self, task_id: str) -> None:
        self._delete(self.key_for(task_id))

    # -- groups and chords (taskq/canvas) ------------------------------------------------
    def group_key_for(self, group_id: str) -> str:
        """Celery's ``celery-taskset-meta-<id>``, under the same stem as ``key_for``'s prefix."""
        stem = self.prefix[: -len(META_PREFIX)] if self.prefix.endswith(META_PREFIX) else self.prefix
        return stem + GROUP_STEM + group_id

    def save_group(self, group_id: str, document: dict[str, Any]) -> None:
        self._set(self.group_key_for(group_id), self.encode_meta(document), self.expires)

    def restore_group(self, group_id: str) -> dict[str, Any] | None:
        raw = self._get(self.group_key_for(group_id))
        return None if raw is None else dict(json.loads(raw))

    def forget_group(self, group_id: str) -> None:
        self._delete(self.group_key_for(group_id))

    def set_chord_size(self, group_id: str, size: int) -> None:
        """Celery's ``<group key>.s``: a Celery worker sharing this backend reads the size there."""
        self._set(self.group_key_for(group_id) + ".s", str(size).encode(), self.expires)

    def chord_size(self, group_id: str) -> int | None:
        raw = self._get(self.group_key_for(group_id) + ".s")
        return None if raw is None else int(raw)

    def chord_add(self, group_id: str, part: ChordPart) -> int:
        """Record a finished header task of a chord, once per task id however often it is
        called (a redelivered header task is not counted twice); return how many distinct
        header tasks are recorded. One atomic step in the store: never a poll."""
        value = json.dumps([part.index, part.task_id, part.state, part.result], separators=(",", ":")).encode()
        return self._chord_add(self.group_key_for(group_id) + ".tq", part.task_id, value, self.expires)

    def chord_parts(self, group_id: str) -> list[ChordPart]:
        """The recorded header tasks, in header order."""
        parts = [ChordPart(*json.loads(raw)) for raw in self._chord_members(self.group_key_for(group_id) + ".tq")]
        return sorted(parts, key=lambda p: p.index)

    def chord_forget(self, group_id: str) -> None:
        self._chord_delete(self.group_key_for(group_id) + ".tq")

    def incr(self, key: str, ttl: float | None = None) -> int:
        """Atomically add one to a counter and return the new value."""
        return self._incr(key, self.expires if ttl is None else ttl)

    def reset_counter(self, key: str) -> None:
        """Drop a counter made by ``incr`` (where counters and values share keys, as in Redis,
        that is ``_delete``; a backend that keeps them apart overrides this)."""
        self._delete(key)


def decode_meta(task_id: str, raw: bytes) -> dict[str, Any]:
    """The stored result document; InvalidResult naming the task when it is not Celery's JSON
    document (a Celery worker with ``result_serializer='pickle'`` or msgpack writes those)."""
    meta = load_json(task_id, raw)
    if not isinstance(meta, dict) or not isinstance(meta.get("status"), str):
        raise InvalidResult(f"result of task {task_id} is not a result document (no 'status' string)")
    return meta


def load_json(task_id: str, raw: bytes) -> Any:
    """JSON stored for a task (its document, or a column of it); InvalidResult naming the task
    when it is not JSON (another serializer's bytes, broken UTF-8, nested beyond the stack)."""
    try:
        return bigjson.loads(raw)
    except (ValueError, TypeError, RecursionError) as exc:
        raise InvalidResult(f"result of task {task_id} is not a JSON document ({type(exc).__name__})") from None
