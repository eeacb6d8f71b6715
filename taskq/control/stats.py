"""What a worker's processes and threads are doing, shared with its control process.

Made before the pool forks or starts threads: one fixed record per consumer (a thread, or a
prefork child) in an anonymous shared mapping. A consumer claims a free record the first
time it runs a task (under a lock made before the fork), then writes its own record only:
the processed count and the running task (a length-prefixed JSON line, written data first
and length last, so a reader never takes half a record as a whole). The control process
reads them for ``inspect active``, ``stats`` and heartbeats. A record of a dead process is
reused; its processed count is kept in the header's total first.

The running task is written by the consumer's runner itself, as the task starts and as it
ends (``TaskRunner._begin``/``_end``, next to the prefork slot's time-limit record): no
signal on the way, since it runs for every task. About a microsecond a task: no JSON and no
system call (a record is the start time and the fields joined by a unit separator; the
record index is per thread and reset in a forked child by os.register_at_fork).

The messages a consumer claimed and has not started (``inspect reserved``, the prefetched
gauge) are written by the consumer itself (consumer.py): once per fetch, the batch as
lines of a second record of its own, and one integer per task started (how many of those
lines are taken). A record of HELD bytes keeps the first lines of a larger batch only
(the prefetched count still counts them all).
"""

from __future__ import annotations

import logging
import mmap
import multiprocessing
import os
import struct
import threading
import time
from collections.abc import Collection, Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from taskq.brokers.base import Delivery

log = logging.getLogger("taskq.control")
RECORD = 1024
HEAD = struct.Struct("<qqQH")  # pid, thread id, processed, active length
HEADER = 64  # the retired processed total of reused records lives here
ARGS_REPR_MAX = 300
START = struct.Struct("<d")
LENGTH = struct.Struct("<H")
LENGTH_AT = 24  # the active length's offset in a record (after pid, thread id, processed)
COUNT = struct.Struct("<Q")  # a processed count: the header's retired total, a record's own at PROCESSED_AT
PROCESSED_AT = 16
SEP = "\x1f"  # ASCII unit separator between a running task's fields
FIELDS = ("id", "name", "args", "kwargs", "queue", "priority", "worker_pid")
HELD = 4096  # bytes per consumer for the claimed messages not started yet
HELD_HEAD = struct.Struct("<IIIII")  # sequence (odd while written), bytes, lines, messages held, taken
TAKEN_AT = 16  # the taken count's offset in a held record
_pack_taken = struct.Struct("<I").pack_into
HELD_FIELDS = ("id", "name", "args", "kwargs", "queue", "priority", "redelivered")
HELD_ARGS_MAX = 100
LINE = "\x1e"  # ASCII record separator between held messages
_generation = [0]  # bumped in every forked child: a thread's cached record index is the parent's
os.register_at_fork(after_in_child=lambda: _generation.__setitem__(0, _generation[0] + 1))


class SharedStats:
    def __init__(self, records: int) -> None:
        self.records = records
        self._mem = mmap.mmap(-1, HEADER + records * RECORD)
        self._held = mmap.mmap(-1, records * HELD)
        self._lock = multiprocessing.Lock()
        self._local = threading.local()
        self._full_warned = False

    # -- the consumers' side --------------------------------------------------------------
    def _my_record(self) -> int | None:
        local = self._local
        if getattr(local, "generation", -1) == _generation[0]:
            return local.index  # type: ignore[no-any-return]
        index = self._claim(os.getpid(), threading.get_ident())
        # The pid as every running-task record writes it: made once per process, with the index.
        local.generation, local.index, local.pid_text = _generation[0], index, str(os.getpid())
        return index

    def _claim(self, pid: int, tid: int) -> int | None:
        # One liveness look per process, not per record: -P gevent -c 500 has 500 records of
        # one process, and each of its 500 consumers claims one (a quadratic number of looks).
        living: dict[int, bool] = {pid: True}
        with self._lock:
            threads = {t.ident for t in threading.enumerate()}
            for i in range(self.records):
                owner, owner_tid = HEAD.unpack_from(self._mem, HEADER + i * RECORD)[:2]
                if owner and owner not in living:
                    living[owner] = alive(owner)
                if owner and living[owner] and (owner != pid or (owner_tid in threads and owner_tid != tid)):
                    continue  # a live consumer's (a thread of this process that ended is not one;
                    # this thread has no record yet: one with its id is a dead thread's, id reused)
                self._retire(i)
                HEAD.pack_into(self._mem, HEADER + i * RECORD, pid, tid, 0, 0)
                self.hold(i, [])
                return i
        if not self._full_warned:
            self._full_warned = True
            log.warning("No free statistics record: this consumer's tasks are not shown by inspect")
        return None

    def _retire(self, index: int) -> None:
        processed = HEAD.unpack_from(self._mem, HEADER + index * RECORD)[2]
        if processed:
            total = COUNT.unpack_from(self._mem, 0)[0]
            COUNT.pack_into(self._mem, 0, total + processed)

    def task_started(self, *fields: str) -> None:
        """``fields`` in the order of FIELDS, the last (worker_pid) filled in here."""
        local = self._local  # _my_record() inlined for the common case (runs for every task)
        index = local.index if getattr(local, "generation", -1) == _generation[0] else self._my_record()
        if index is None:
            return
        text = SEP.join((*fields, local.pid_text))
        data = (START.pack(time.time()) + text.encode("utf-8", "replace"))[: RECORD - HEAD.size]
        start = HEADER + index * RECORD
        LENGTH.pack_into(self._mem, start + LENGTH_AT, 0)
        self._mem[start + HEAD.size : start + HEAD.size + len(data)] = data
        LENGTH.pack_into(self._mem, start + LENGTH_AT, len(data))

    def task_finished(self) -> None:
        local = self._local
        index = local.index if getattr(local, "generation", -1) == _generation[0] else self._my_record()
        if index is None:
            return
        start = HEADER + index * RECORD
        processed = COUNT.unpack_from(self._mem, start + PROCESSED_AT)[0]
        COUNT.pack_into(self._mem, start + PROCESSED_AT, processed + 1)
        LENGTH.pack_into(self._mem, start + LENGTH_AT, 0)

    def my_record(self) -> int | None:
        """This thread's record (claimed on first use): the consumer passes it to ``hold``."""
        return self._my_record()

    def hold(self, index: int, deliveries: Sequence[Delivery]) -> None:
        """The messages a consumer just claimed (in the order it runs them), none taken yet."""
        data = LINE.join(map(_held_line, deliveries)).encode("utf-8", "replace")
        count = len(deliveries)
        if len(data) > HELD - HELD_HEAD.size:  # keep the lines that fit whole
            cut = data[: HELD - HELD_HEAD.size + 1]
            data = cut.rsplit(LINE.encode(), 1)[0] if LINE.encode() in cut else b""
            count = data.count(LINE.encode()) + 1 if data else 0
        start = index * HELD
        seq = HELD_HEAD.unpack_from(self._held, start)[0]
        HELD_HEAD.pack_into(self._held, start, (seq + 1) & 0xFFFFFFFF, 0, 0, 0, 0)
        self._held[start + HELD_HEAD.size : start + HELD_HEAD.size + len(data)] = data
        HELD_HEAD.pack_into(self._held, start, (seq + 2) & 0xFFFFFFFF, len(data), count, len(deliveries), 0)

    def take(self, index: int, taken: int) -> None:
        """The consumer started its ``taken``-th held message (one integer written)."""
        _pack_taken(self._held, index * HELD + TAKEN_AT, taken)

    # -- the control process's side -------------------------------------------------------
    def reserved(self) -> list[dict[str, Any]]:
        """The held messages not started yet, of every live consumer, in run order."""
        found: list[dict[str, Any]] = []
        for i in range(self.records):
            pid = HEAD.unpack_from(self._mem, HEADER + i * RECORD)[0]
            if not pid or not alive(pid):
                continue
            lines, taken = self._held_lines(i)
            for line in lines[taken:]:
                values = line.split(SEP)
                if len(values) == len(HELD_FIELDS):
                    held: dict[str, Any] = dict(zip(HELD_FIELDS, values, strict=True))
                    held["priority"], held["redelivered"] = _int(held["priority"]), held["redelivered"] == "1"
                    held["time_start"], held["worker_pid"] = None, None
                    found.append(held)
        return found

    def prefetched(self) -> int:
        """How many claimed messages wait in the consumers, not started (every one counted,
        also those past a record's room)."""
        total = 0
        for i in range(self.records):
            pid = HEAD.unpack_from(self._mem, HEADER + i * RECORD)[0]
            if pid and alive(pid):
                held, taken = HELD_HEAD.unpack_from(self._held, i * HELD)[3:]
                total += max(held - taken, 0)
        return total

    def _held_lines(self, index: int) -> tuple[list[str], int]:
        start = index * HELD
        for _ in range(100):  # the consumer rewrites it once per fetch: a retry or two at most
            seq, size, count = HELD_HEAD.unpack_from(self._held, start)[:3]
            data = bytes(self._held[start + HELD_HEAD.size : start + HELD_HEAD.size + size])
            again, *_, taken = HELD_HEAD.unpack_from(self._held, start)
            if seq % 2 == 0 and again == seq:
                text = data.decode("utf-8", "replace") if count else ""
                return (text.split(LINE)[:count] if text else []), taken
        return [], 0

    def processed(self) -> int:
        total = COUNT.unpack_from(self._mem, 0)[0]
        for i in range(self.records):
            total += HEAD.unpack_from(self._mem, HEADER + i * RECORD)[2]
        return int(total)

    def active(self) -> list[dict[str, Any]]:
        found = []
        for i in range(self.records):
            start = HEADER + i * RECORD
            pid, _, _, size = HEAD.unpack_from(self._mem, start)
            if not (pid and size) or not alive(pid):
                continue
            data = self._mem[start + HEAD.size : start + HEAD.size + size]
            values = data[START.size :].decode("utf-8", "replace").split(SEP)
            if len(data) < START.size or len(values) != len(FIELDS):
                continue  # rewritten while read (or cut at the record's end): the next look sees it whole
            run: dict[str, Any] = dict(zip(FIELDS, values, strict=True))
            run["time_start"] = START.unpack_from(data)[0]
            run["priority"], run["worker_pid"] = _int(run["priority"]), _int(run["worker_pid"])
            found.append(run)
        return found

    def hold_nothing(self, pids: Collection[int]) -> bool:
        """Whether each of these processes has a record and none runs a task or holds a
        claimed message (a record being rewritten counts as holding: a fetch just claimed).
        The prefork supervisor then has no claim of theirs to keep alive."""
        seen: set[int] = set()
        for i in range(self.records):
            pid, _, _, size = HEAD.unpack_from(self._mem, HEADER + i * RECORD)
            if pid not in pids:
                continue
            seq, *_, held, taken = HELD_HEAD.unpack_from(self._held, i * HELD)
            if size or seq % 2 or held > taken:
                return False
            seen.add(pid)
        return seen.issuperset(pids)

    def pids(self) -> list[int]:
        out = []
        for i in range(self.records):
            pid = HEAD.unpack_from(self._mem, HEADER + i * RECORD)[0]
            if pid and alive(pid) and pid not in out:
                out.append(pid)
        return out


def _held_line(delivery: Delivery) -> str:
    """One held message as a line of HELD_FIELDS. Kept cheap (it runs for every message
    fetched): no escaping; a line that a separator inside a header split wrongly is not
    listed (``reserved`` skips lines with the wrong number of fields)."""
    envelope = delivery.envelope
    if envelope is None:
        return f"?{SEP}?{SEP}{SEP}{SEP}{delivery.queue}{SEP}0{SEP}0"
    headers = envelope.headers
    task, args, kwargs = headers.get("task"), headers.get("argsrepr"), headers.get("kwargsrepr")
    task_id = headers.get("id")  # envelope.id without its call
    return (  # only strings and ints go in: a foreign value's str() could be anything
        f"{task_id if isinstance(task_id, str) else ''}{SEP}{task if isinstance(task, str) else '?'}"
        f"{SEP}{args[:HELD_ARGS_MAX] if isinstance(args, str) else ''}"
        f"{SEP}{kwargs[:HELD_ARGS_MAX] if isinstance(kwargs, str) else ''}{SEP}{delivery.queue}"
        f"{SEP}{envelope.priority}{SEP}{1 if delivery.redeliveries else 0}"
    )


def short(text: Any, value: Any) -> str:
    """A running task's arguments as shown: the message's argsrepr/kwargsrepr, else repr."""
    return (text if isinstance(text, str) else repr(value))[:ARGS_REPR_MAX].replace(SEP, " ")


def _int(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        return 0


def alive(pid: int) -> bool:
    """Whether a process runs; a zombie (dead, not reaped yet: a killed worker's children are
    reaped by init, sometimes a second later) is not."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        with open(f"/proc/{pid}/stat", "rb") as stat:
            return stat.read().rsplit(b")", 1)[1].split()[0] != b"Z"
    except (OSError, IndexError):  # no /proc (not Linux): the signal check is all there is
        return True
