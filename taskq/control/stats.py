"""What a worker's processes and threads are doing, shared with its control process.

Made before the pool forks or starts threads: one fixed record per consumer (a thread, or a
prefork child) in an anonymous shared mapping. A consumer claims a free record the first
time it runs a task (under a lock made before the fork), then writes its own record only:
the processed count and the running task (a length-prefixed JSON line, written data first
and length last, so a reader never takes half a record as a whole). The control process
reads them for ``inspect active``, ``stats`` and heartbeats. A record of a dead process is
reused; its processed count is kept in the header's total first.

Written by receivers of task_prerun/task_postrun (taskq.signals): nothing else in the
worker knows about it.
"""

from __future__ import annotations

import json
import logging
import mmap
import multiprocessing
import os
import struct
import threading
import time
from typing import Any

from taskq import signals

log = logging.getLogger("taskq.control")
RECORD = 1024
HEAD = struct.Struct("<qqQH")  # pid, thread id, processed, active length
HEADER = 64  # the retired processed total of reused records lives here
ARGS_REPR_MAX = 300


class SharedStats:
    def __init__(self, records: int) -> None:
        self.records = records
        self._mem = mmap.mmap(-1, HEADER + records * RECORD)
        self._lock = multiprocessing.Lock()
        self._local = threading.local()
        self._full_warned = False

    # -- the consumers' side --------------------------------------------------------------
    def _my_record(self) -> int | None:
        pid = os.getpid()
        if getattr(self._local, "pid", None) == pid:
            return self._local.index  # type: ignore[no-any-return]
        index = self._claim(pid, threading.get_ident())
        self._local.pid, self._local.index = pid, index
        return index

    def _claim(self, pid: int, tid: int) -> int | None:
        with self._lock:
            for i in range(self.records):
                owner = HEAD.unpack_from(self._mem, HEADER + i * RECORD)[0]
                if owner and _alive(owner):
                    continue
                self._retire(i)
                HEAD.pack_into(self._mem, HEADER + i * RECORD, pid, tid, 0, 0)
                return i
        if not self._full_warned:
            self._full_warned = True
            log.warning("No free statistics record: this consumer's tasks are not shown by inspect")
        return None

    def _retire(self, index: int) -> None:
        processed = HEAD.unpack_from(self._mem, HEADER + index * RECORD)[2]
        if processed:
            total = struct.unpack_from("<Q", self._mem, 0)[0]
            struct.pack_into("<Q", self._mem, 0, total + processed)

    def task_started(self, info: dict[str, Any]) -> None:
        index = self._my_record()
        if index is None:
            return
        data = json.dumps(info, default=repr).encode()[: RECORD - HEAD.size]
        start = HEADER + index * RECORD
        struct.pack_into("<H", self._mem, start + 24, 0)
        self._mem[start + HEAD.size : start + HEAD.size + len(data)] = data
        struct.pack_into("<H", self._mem, start + 24, len(data))

    def task_finished(self) -> None:
        index = self._my_record()
        if index is None:
            return
        start = HEADER + index * RECORD
        processed = struct.unpack_from("<Q", self._mem, start + 16)[0]
        struct.pack_into("<Q", self._mem, start + 16, processed + 1)
        struct.pack_into("<H", self._mem, start + 24, 0)

    # -- the control process's side -------------------------------------------------------
    def processed(self) -> int:
        total = struct.unpack_from("<Q", self._mem, 0)[0]
        for i in range(self.records):
            total += HEAD.unpack_from(self._mem, HEADER + i * RECORD)[2]
        return int(total)

    def active(self) -> list[dict[str, Any]]:
        found = []
        for i in range(self.records):
            start = HEADER + i * RECORD
            pid, _, _, size = HEAD.unpack_from(self._mem, start)
            if not (pid and size) or not _alive(pid):
                continue
            try:
                found.append(json.loads(self._mem[start + HEAD.size : start + HEAD.size + size]))
            except ValueError:
                continue  # rewritten while read: the next look sees it whole
        return found

    def pids(self) -> list[int]:
        out = []
        for i in range(self.records):
            pid = HEAD.unpack_from(self._mem, HEADER + i * RECORD)[0]
            if pid and _alive(pid) and pid not in out:
                out.append(pid)
        return out

    # -- wiring ---------------------------------------------------------------------------
    def install(self) -> None:
        """Connect to the task signals (before the pool forks, so children inherit it)."""
        signals.task_prerun.connect(self._on_prerun)
        signals.task_postrun.connect(self._on_postrun)

    def uninstall(self) -> None:
        signals.task_prerun.disconnect(self._on_prerun)
        signals.task_postrun.disconnect(self._on_postrun)

    def _on_prerun(self, task_id: str, task: Any, args: Any, kwargs: Any, request: Any = None, **_: Any) -> None:
        headers = getattr(request, "headers", None) or {}
        self.task_started({
            "id": task_id, "name": getattr(task, "name", str(task)),
            "args": _short(headers.get("argsrepr"), args), "kwargs": _short(headers.get("kwargsrepr"), kwargs),
            "time_start": time.time(), "worker_pid": os.getpid(),
            "queue": getattr(request, "queue", ""), "priority": getattr(request, "priority", 0),
        })

    def _on_postrun(self, **_: Any) -> None:
        self.task_finished()


def _short(text: Any, value: Any) -> str:
    return (text if isinstance(text, str) else repr(value))[:ARGS_REPR_MAX]


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
