"""The clustered forms of a Redis URL, parsed without I/O.

* ``redis+cluster://[user:password@]host:port[,host:port...][/0]``: a Redis Cluster; the
  hosts are startup nodes (any of them will do: the client learns the others from it).
* ``redis+sentinel://[user:password@]host:port[,host:port...]/<master name>[/db]``: the
  master that these sentinels watch; the credentials are the Redis servers' (sentinels
  are asked without them).

Plain ``redis://``, ``rediss://`` and ``unix://`` URLs go to redis-py's own parser.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import unquote, urlsplit

from taskq.display import redact
from taskq.errors import ConfigurationError

CLUSTER = "redis+cluster"
SENTINEL = "redis+sentinel"
SCHEMES = (CLUSTER, SENTINEL)


@dataclass(frozen=True)
class Topology:
    """Where a clustered URL points: its kind, hosts, credentials, master name and database."""

    kind: str  # CLUSTER or SENTINEL
    hosts: tuple[tuple[str, int], ...]
    username: str | None
    password: str | None
    service: str  # the sentinel master name ("" for a cluster)
    db: int


def parse_topology(url: str, what: str = "broker") -> Topology:
    """A clustered URL's parts, or one clear ConfigurationError."""
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme not in SCHEMES:
        raise ConfigurationError(f"{what} URL {redact(url)!r} is not a redis+cluster:// or redis+sentinel:// URL")
    if parts.query:
        raise ConfigurationError(f"{what} URL {redact(url)!r}: {scheme}:// takes no query options")
    credentials, _, hostlist = parts.netloc.rpartition("@")
    username, _, password = credentials.partition(":") if credentials else ("", "", "")
    hosts = tuple(_host(item, url, what) for item in hostlist.split(","))
    path = [unquote(p) for p in parts.path.split("/") if p]
    service = ""
    if scheme == SENTINEL:
        if not path:
            raise ConfigurationError(f"{what} URL {redact(url)!r}: name the master, e.g. {SENTINEL}://h:26379/mymaster/0")
        service, path = path[0], path[1:]
    if len(path) > 1 or (path and not (path[0].isascii() and path[0].isdigit())):
        raise ConfigurationError(f"{what} URL {redact(url)!r}: the path must end with a database number")
    db = int(path[0]) if path else 0
    if scheme == CLUSTER and db != 0:
        raise ConfigurationError(f"{what} URL {redact(url)!r}: a Redis Cluster has database 0 only")
    return Topology(scheme, hosts, unquote(username) or None, unquote(password) or None, service, db)


def _host(item: str, url: str, what: str) -> tuple[str, int]:
    host, _, port = item.strip().rpartition(":")
    if not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ConfigurationError(f"{what} URL {redact(url)!r}: each host must be host:port, got {item!r}")
    return host.strip("[]"), int(port)
