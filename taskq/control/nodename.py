"""Worker node names as Celery forms them (celery/utils/nodenames.py): ``name@host``.

``%h`` is the host's full name, ``%n`` its first label, ``%d`` its domain (the rest);
``%%`` is a percent sign. A name without ``@`` gets the ``taskq@`` prefix, as Celery's
gets ``celery@``; no name at all is ``taskq@<host>``."""

from __future__ import annotations

import re
import socket

DEFAULT_NAME = "taskq"
_FIELD = re.compile(r"%([hnd%])")


def expand(template: str, host: str | None = None) -> str:
    host = host or socket.gethostname()  # Celery's %h is gethostname(), not the FQDN
    short, _, domain = host.partition(".")
    values = {"h": host, "n": short, "d": domain, "%": "%"}
    return _FIELD.sub(lambda m: values[m.group(1)], template)


def nodename(template: str | None, host: str | None = None) -> str:
    if not template:
        return f"{DEFAULT_NAME}@{expand('%h', host)}"
    name = expand(template, host)
    return name if "@" in name else f"{DEFAULT_NAME}@{name}"
