"""Log output of the CLI: text (the default) or JSON, one object a line (``--log-format json``).

A JSON line has ``time`` (ISO-8601, UTC), ``level``, ``logger``, ``process``, ``thread``
and ``message``, a traceback in ``exc_info`` when there is one, and on task lines the
``task_id`` and ``task_name``: from the request of the task running in that thread (lines
a task logs itself), else from the worker's own "Task NAME[ID] ..." lines.
"""

from __future__ import annotations

import json
import logging
import re
from datetime import datetime, timezone

from taskq.task import _current

TASK_LINE = re.compile(r"^Task (?P<name>[^\s\[]+)\[(?P<id>[^\]]+)\]")


class JSONFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        message = record.getMessage()
        line: dict[str, object] = {
            "time": datetime.fromtimestamp(record.created, timezone.utc).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "process": record.process,
            "thread": record.threadName,
            "message": message,
        }
        request = getattr(_current, "request", None)
        found = TASK_LINE.match(message)
        if request is not None:
            line.update(task_id=request.id, task_name=request.task)
        elif found:
            line.update(task_id=found["id"], task_name=found["name"])
        if record.exc_info:
            line["exc_info"] = self.formatException(record.exc_info)
        return json.dumps(line, default=str)
