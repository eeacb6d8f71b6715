"""Where the side channels (remote control and events) travel, by broker URL.

They are implemented once per broker family, not once per broker:

* ``kombu``: amqp://, amqps://, redis://, rediss:// and kombu+TRANSPORT:// speak kombu's own
  pidbox and celeryev formats through a kombu Connection, so Celery's tools and taskq's
  meet on the same exchanges and channels;
* ``sqlite``: tables in the broker's database file;
* ``postgresql``: tables in the broker's schema, readers woken by LISTEN/NOTIFY;
* ``memory``: one process only (tests), through in-process queues.
"""

from __future__ import annotations

import ast
import importlib
import sys
from typing import TYPE_CHECKING, Any, Literal
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from taskq.config import url_scheme

if TYPE_CHECKING:
    from taskq.config import Settings

Family = Literal["kombu", "sqlite", "postgresql", "memory"]
# What kombu imports when installed, for what the worker's control process never uses: the
# YAML and msgpack serializers (remote control and events are JSON), Django's lazy strings in
# its JSON encoder, billiard's after-fork hook (it falls back to multiprocessing's) and the
# cffi that comes with billiard, the brotli and zstandard compressions.
KOMBU_EXTRAS = ("yaml", "msgpack", "django", "billiard", "cffi", "brotli", "brotlicffi", "zstandard", "zstd")
# The modules of taskq's that import kombu at their top: remote control's node and the events bus.
KOMBU_SIDES = ("taskq.control.kombu_mailbox", "taskq.events.kombu_bus", "kombu.utils.json")
KOMBU_SCHEMES = {"amqp": "amqp", "amqps": "amqps", "redis": "redis", "rediss": "rediss"}


def family(url: str) -> Family:
    scheme = url_scheme(url)
    if scheme == "sqlite":
        return "sqlite"
    if scheme == "memory":
        return "memory"
    if scheme in ("postgresql", "postgres"):
        return "postgresql"
    return "kombu"


def kombu_url(url: str) -> str:
    """The kombu URL of a taskq broker URL: same server, same credentials and vhost or db."""
    scheme, rest = url.split("://", 1)
    if scheme.startswith("kombu+"):
        return f"{scheme[len('kombu+'):]}://{rest}"
    return f"{KOMBU_SCHEMES[scheme]}://{rest}"


def kombu_ssl(url: str) -> tuple[str, dict[str, Any] | bool]:
    """amqps:// with pika's ``?ssl_options={...}`` (docs/rabbitmq.md, TLS): the URL without
    it and kombu's ``ssl`` argument (py-amqp's keys: ca_certs, certfile, keyfile, cert_reqs)."""
    parts = urlsplit(url)
    query = parse_qsl(parts.query, keep_blank_values=True)
    raw = next((v for k, v in query if k == "ssl_options"), None)
    if parts.scheme != "amqps":
        return url, False
    rest = urlunsplit(parts._replace(query=urlencode([(k, v) for k, v in query if k != "ssl_options"])))
    options: dict[str, Any] = {}
    if raw:
        try:
            given = ast.literal_eval(raw)
        except (ValueError, SyntaxError):
            given = {}
        if isinstance(given, dict):
            options = {k: v for k, v in given.items() if k in ("ca_certs", "certfile", "keyfile", "server_hostname")}
    if options.get("ca_certs"):
        import ssl  # only for TLS: an SQLite or plain worker never needs it

        options["cert_reqs"] = ssl.CERT_REQUIRED
    return rest, options or True


def import_kombu_lean() -> None:
    """Import kombu for the side channels without KOMBU_EXTRAS: about 3 MB less private
    memory in the control process (docs/performance.md "Idle memory"). Only for a process
    that runs no user code, the worker's control process: kombu registers its serializers
    once, when it is imported, so kombu imported here has no YAML or msgpack serializer for
    anyone after. An extra imported already (a Django app) is used as usual; the others can
    still be imported later."""
    skipped = [name for name in KOMBU_EXTRAS if name not in sys.modules]
    for name in skipped:
        sys.modules[name] = None  # type: ignore[assignment]  # importing it raises ImportError
    try:
        for module in KOMBU_SIDES:
            importlib.import_module(module)
    finally:
        for name in skipped:
            if name in sys.modules and sys.modules[name] is None:
                del sys.modules[name]


def kombu_connection(conf: Settings) -> Any:
    """A kombu Connection for the side channels. No key prefix on Redis: Celery's tools read
    ``/{db}.celeryev`` and ``/{db}.celery.pidbox`` unprefixed, whatever taskq's own keys use."""
    import kombu.connection  # kombu is only partly annotated: its objects are Any here

    connection: Any = kombu.connection.Connection
    url, tls = kombu_ssl(kombu_url(conf.broker_url))
    return connection(url, connect_timeout=5, ssl=tls)
