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
import importlib.util
import sys
from collections.abc import Callable, Sequence
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
# What a prefork supervisor skips: its children run user code, so only what a task cannot miss
# (billiard's after-fork hook, which multiprocessing's replaces; the cffi it brings) or what
# comes back on first use (``serializers_on_first_use``).
SUPERVISOR_SKIPS = ("yaml", "msgpack", "billiard", "cffi")
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


def import_kombu_lean(skip: Sequence[str] = KOMBU_EXTRAS) -> list[str]:
    """Import kombu for the side channels without the extras in ``skip``: about 3 MB less
    private memory for the worker's control side (docs/performance.md "Idle memory"). kombu
    registers its serializers once, when it is imported, so kombu imported here has no
    serializer of a skipped extra: with every extra skipped only in a process that runs no
    user code (the control process); a prefork supervisor skips SUPERVISOR_SKIPS and then
    calls ``serializers_on_first_use``. An extra imported already (a Django app) is used as
    usual. Returns the extras skipped."""
    kombu_new = "kombu" not in sys.modules  # imported already (a kombu+ broker): as it is
    skipped = [name for name in skip if name not in sys.modules and kombu_new]
    for name in skipped:
        sys.modules[name] = None  # type: ignore[assignment]  # importing it raises ImportError
    try:
        for module in KOMBU_SIDES:
            importlib.import_module(module)
    finally:
        for name in skipped:
            if name in sys.modules and sys.modules[name] is None:
                del sys.modules[name]
    return skipped


def serializers_on_first_use(skipped: Sequence[str]) -> None:
    """kombu's YAML and msgpack serializers, for a process (and the children it forks, which
    run user code) that imported kombu without their libraries: each installed one is
    registered to import its library on first use, then does what kombu's own does."""
    from kombu import serialization

    registry: Any = serialization.registry
    for library, content_type, register in (
        ("yaml", "application/x-yaml", serialization.register_yaml),
        ("msgpack", "application/x-msgpack", serialization.register_msgpack),
    ):
        if library not in skipped or importlib.util.find_spec(library) is None:
            continue

        def encode(data: Any, name: str = library, register: Callable[[], None] = register) -> Any:
            register()  # kombu's own codec takes this one's place
            return registry.dumps(data, name)[2]

        def decode(data: Any, content_type: str = content_type, register: Callable[[], None] = register) -> Any:
            register()
            # The caller's loads() checked the content type against its accept list already.
            return registry.loads(data, content_type, "binary", force=True)

        registry.register(library, encode, decode, content_type, "binary" if library == "msgpack" else "utf-8")


def kombu_connection(conf: Settings) -> Any:
    """A kombu Connection for the side channels. No key prefix on Redis: Celery's tools read
    ``/{db}.celeryev`` and ``/{db}.celery.pidbox`` unprefixed, whatever taskq's own keys use."""
    import kombu.connection  # kombu is only partly annotated: its objects are Any here

    connection: Any = kombu.connection.Connection
    url, tls = kombu_ssl(kombu_url(conf.broker_url))
    return connection(url, connect_timeout=5, ssl=tls)
