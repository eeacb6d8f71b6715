"""Every queue of the broker's vhost, read from RabbitMQ's management HTTP API.

AMQP cannot list queues; the management plugin can (``GET /api/queues/<vhost>``). Its URL
is ``broker_management_url``, else ``http://<broker host>:15672``; the broker URL's user and
password log in, unless the management URL carries its own. When the plugin is off or the
API cannot be reached, ``vhost_queues`` returns None and the caller lists the queues it
knows (the broker's ``queues()``).
"""

from __future__ import annotations

import base64
import json
import logging
import urllib.error
import urllib.request
from urllib.parse import quote, unquote, urlsplit, urlunsplit

from taskq.brokers.rabbitmq.broker import connection_parameters
from taskq.brokers.rabbitmq.wire import check_queue_name, is_internal
from taskq.config import Settings
from taskq.display import redact
from taskq.errors import ConfigurationError

log = logging.getLogger("taskq")
DEFAULT_PORT = 15672


def management_url(broker_url: str, settings: Settings) -> str:
    if settings.broker_management_url:
        return settings.broker_management_url.rstrip("/")
    host = connection_parameters(broker_url).host
    return f"http://{f'[{host}]' if ':' in host else host}:{DEFAULT_PORT}"


def vhost_queues(broker_url: str, settings: Settings, timeout: float = 5.0) -> list[str] | None:
    """The vhost's queues, less taskq's own dead-letter and delay queues and the names taskq
    cannot address (server-named ``amq.*`` ones); None when the management API does not
    answer (plugin off, other port, refused login)."""
    params = connection_parameters(broker_url)
    base = urlsplit(management_url(broker_url, settings))
    user, password = params.credentials.username, params.credentials.password
    if base.username is not None:  # http://user:password@host:port: its own login, not in the request line
        user, password = unquote(base.username), unquote(base.password or "")
        base = base._replace(netloc=base.netloc.rpartition("@")[2])
    path = f"{base.path}/api/queues/{quote(params.virtual_host, safe='')}"
    request = urllib.request.Request(urlunsplit(base._replace(path=path, query="columns=name")))
    login = f"{user}:{password}".encode()
    request.add_header("Authorization", "Basic " + base64.b64encode(login).decode("ascii"))
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            listed = json.loads(response.read())
        names = [item["name"] for item in listed]
    except (OSError, ValueError, KeyError, TypeError) as exc:  # URLError and HTTPError are OSErrors
        log.info("RabbitMQ management API at %s not usable (%s)", redact(urlunsplit(base)), type(exc).__name__)
        return None
    return sorted(str(name) for name in names if not is_internal(str(name)) and _addressable(str(name)))


def _addressable(name: str) -> bool:
    try:
        check_queue_name(name)
    except ConfigurationError:
        return False
    return True
