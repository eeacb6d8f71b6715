"""Settings: one dataclass, built from defaults, TASKQ_* variables, ``app.conf`` and keywords.

Precedence: a TaskQ keyword beats ``app.conf``, which beats the variable, which beats the
default. ``app.conf`` stays assignable until a worker or beat starts; then it is frozen.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field, fields
from datetime import timedelta
from typing import Any
from urllib.parse import urlsplit

from taskq.compat.setting_names import FIXED, OLD_NAMES, reason_unsupported
from taskq.display import MASK, redact
from taskq.errors import ConfigurationError

log = logging.getLogger("taskq")

ENV_PREFIX = "TASKQ_"
DEFAULT_BROKER_URL = "sqlite:///taskq.db"
REDIS_CLUSTERED = ("redis+cluster", "redis+sentinel")  # docs/scaling.md
KNOWN_SCHEMES = ("memory", "sqlite", "redis", "rediss", *REDIS_CLUSTERED, "amqp", "amqps", "postgresql", "postgres")
# Schemes whose server can also keep results (DESIGN.md section 5).
RESULT_CAPABLE = ("memory", "sqlite", "redis", "rediss", *REDIS_CLUSTERED)


@dataclass
class Settings:
    broker_url: str = DEFAULT_BROKER_URL
    result_backend: str | None = None  # None: the broker's own server when it can store results
    beat_store_url: str | None = None
    outbox_url: str | None = None  # postgresql://...?schema=: transactional enqueue to a non-PostgreSQL broker
    task_default_queue: str = "celery"  # Celery's default, so both sides meet on one queue
    task_serializer: str = "json"
    result_serializer: str = "json"
    accept_content: tuple[str, ...] = ("json",)
    signing_key: str | None = None
    signing_max_age: float = 3600.0  # seconds a signed message stays valid (from its eta if later)
    result_expires: float = 86400.0
    result_key_prefix: str = "celery-task-meta-"
    recovery_time: float = 30.0  # a dead worker's claims return to the queue after this
    max_deliveries: int = 5  # involuntary redeliveries before a message is dead-lettered
    task_acks_late: bool = True
    task_reject_on_worker_lost: bool = True  # False (Celery's default): a lost child's task ends FAILURE, not rerun
    task_ignore_result: bool = False
    task_track_started: bool = False
    task_default_retry_delay: float = 180.0
    task_max_retries: int = 3
    task_always_eager: bool = False  # delay/apply_async run the task here, at once (tests; Celery's name)
    task_eager_propagates: bool = False  # eager mode: a failing task raises from delay/apply_async itself
    task_time_limit: float | None = None  # seconds; the worker stops the task (docs/worker.md)
    task_soft_time_limit: float | None = None  # seconds; SoftTimeLimitExceeded inside the task
    revoke_expires: float = 10800.0  # seconds a revocation is kept (Celery's persistent revokes)
    worker_concurrency: int = field(default_factory=lambda: os.cpu_count() or 1)
    worker_pool: str = "prefork"
    worker_prefetch_multiplier: int = 4  # messages a pool slot claims at once, at first
    worker_prefetch_max: int = 64  # the claim grows to this while tasks stay fast (< 10 ms)
    worker_prefetch_bytes: int = 64 * 1024 * 1024  # a claim holds at most this many message bytes (0: no cap)
    worker_hold_limit: float = 1.0  # unstarted messages go back once a running task passes this
    worker_max_tasks_per_child: int = 0  # prefork: a child is replaced after this many tasks (0: never)
    worker_max_memory_per_child: int = 0  # prefork: ... once its resident memory passes this, KiB (0: never)
    worker_shutdown_timeout: float = 30.0  # warm-shutdown grace before running tasks are abandoned
    worker_heartbeat_file: str | None = None  # None: <tempdir>/taskq-worker.heartbeat
    worker_hostname: str | None = None  # the node name (-n); None: taskq@<host>
    worker_send_task_events: bool = False  # task-* events (-E); worker-* events are always sent
    worker_event_heartbeat: float = 2.0  # seconds between worker-heartbeat events (Celery's default)
    task_send_sent_event: bool = False  # task-sent events from producers
    broker_poll_interval: float = 0.05  # sqlite only: how often an idle fetch looks again
    broker_transport_options: dict[str, Any] = field(default_factory=dict)
    broker_management_url: str | None = None  # RabbitMQ's management API; None: http://<broker host>:15672
    result_backend_transport_options: dict[str, Any] = field(default_factory=dict)  # e.g. global_keyprefix
    queue_arguments: dict[str, dict[str, Any]] = field(default_factory=dict)
    beat_schedule: dict[str, Any] = field(default_factory=dict)
    # Routing, with Celery's names and meanings (taskq/routing.py, docs/routing.md).
    task_routes: Any = None  # a dict, a router function, a dotted name, or a list of those
    task_queues: Any = None  # kombu Queue objects (taskq.Queue); None: the default queue alone
    task_default_exchange: str | None = None  # None: task_default_queue
    task_default_exchange_type: str = "direct"
    task_default_routing_key: str | None = None  # None: task_default_queue
    task_create_missing_queues: bool = True  # a queue not in task_queues gets a direct exchange of its name
    timezone: str = "UTC"
    include: tuple[str, ...] = ()  # task modules the worker and beat import at start (Celery's include=)
    imports: tuple[str, ...] = ()  # the same, Celery's other name for it

    def __setattr__(self, name: str, value: Any) -> None:
        if self.__dict__.get("_frozen"):
            raise ConfigurationError(f"app.conf is frozen (a worker or beat started); cannot set {name}")
        if name.startswith("_"):
            object.__setattr__(self, name, value)
            return
        name = self.canonical_name(name)
        if name not in SETTING_NAMES:
            self._keep_other(name, value)
            return
        if isinstance(value, timedelta):  # Celery accepts timedelta wherever seconds are meant
            value = value.total_seconds()
        elif isinstance(value, list) and name in ("include", "imports", "accept_content"):
            value = tuple(value)
        object.__setattr__(self, name, value)
        object.__setattr__(self, "_changes", self.changes + 1)

    @property
    def changes(self) -> int:
        """How many times a setting was assigned: what is derived from the settings (the app's
        send plans) is kept while this stays the same. A value changed in place (a dict's
        entry) is not counted, as the router does not see it either."""
        return self.__dict__.get("_changes", 0)  # type: ignore[no-any-return]

    # -- Celery's names and mapping interface (app.conf.update, app.conf["x"]) --------------
    def canonical_name(self, name: str) -> str:
        """A Celery 3 uppercase name becomes today's name, with one warning per name."""
        new = OLD_NAMES.get(name)
        if new is None:
            return name
        self._warn_once(name, f"setting {name} is Celery's old name for {new}: read as {new}")
        return new

    def _keep_other(self, name: str, value: Any) -> None:
        """A setting taskq does not use: kept (``app.conf[name]`` reads it back) and said once."""
        self.__dict__.setdefault("_others", {})[name] = value
        fixed = FIXED.get(name)
        if fixed is not None:
            if value == fixed[0]:
                return  # Celery's value is what taskq always does
            self._warn_once(name, f"setting {name}={value!r} is not supported by taskq ({fixed[1]}); ignored")
            return
        reason = reason_unsupported(name)
        if reason is not None:
            self._warn_once(name, f"Celery setting {name} is not supported by taskq ({reason}); ignored")
            return
        if name.isupper() and name.startswith(("CELERY", "BROKER")):
            self._warn_once(name, f"setting {name} is a Celery 3 name taskq does not have; ignored"
                            " (docs/migrating-from-celery.md lists each setting)")
            return
        import difflib  # here: only a misspelt setting needs it (issue 22, startup)

        close = difflib.get_close_matches(name, SETTING_NAMES, n=1)
        hint = f" (did you mean {close[0]}?)" if close else ""
        self._warn_once(name, f"unknown setting {name!r}{hint}; kept in app.conf but unused by taskq")

    def _warn_once(self, name: str, text: str) -> None:
        warned: set[str] = self.__dict__.setdefault("_warned", set())
        if name not in warned:
            warned.add(name)
            log.warning("%s", text)

    def update(self, other: Mapping[str, Any] | None = None, /, **settings: Any) -> None:
        """Set many settings at once, as Celery's ``app.conf.update(...)``."""
        for key, value in {**(other or {}), **settings}.items():
            setattr(self, key, value)

    def __getitem__(self, name: str) -> Any:
        name = OLD_NAMES.get(name, name)
        if name in SETTING_NAMES:
            return getattr(self, name)
        try:
            return self.__dict__.get("_others", {})[name]
        except KeyError:
            raise KeyError(name) from None

    def __setitem__(self, name: str, value: Any) -> None:
        setattr(self, name, value)

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and (
            OLD_NAMES.get(name, name) in SETTING_NAMES or name in self.__dict__.get("_others", {})
        )

    def __iter__(self) -> Iterator[str]:
        yield from SETTING_NAMES
        yield from self.__dict__.get("_others", {})

    def get(self, name: str, default: Any = None) -> Any:
        try:
            return self[name]
        except KeyError:
            return default

    def setdefault(self, name: str, value: Any) -> Any:
        if name not in self:
            self[name] = value
        return self[name]

    def __repr__(self) -> str:
        """Settings fit for a log or a traceback: URLs redacted, the signing key hidden."""
        shown = []
        for f in fields(self):
            value = getattr(self, f.name)
            if f.name == "signing_key" and value:
                value = MASK
            elif isinstance(value, str):
                value = redact(value)
            shown.append(f"{f.name}={value!r}")
        return f"Settings({', '.join(shown)})"

    def freeze(self) -> None:
        object.__setattr__(self, "_frozen", True)

    @property
    def frozen(self) -> bool:
        return bool(self.__dict__.get("_frozen"))

    @property
    def result_backend_url(self) -> str | None:
        """The backend URL in force: explicit, else the broker's server when it can store results."""
        if self.result_backend:
            return None if self.result_backend in ("none", "disabled") else self.result_backend
        scheme = url_scheme(self.broker_url)
        return self.broker_url if scheme in RESULT_CAPABLE else None

    @property
    def beat_store(self) -> str:
        if self.beat_store_url:
            return self.beat_store_url
        scheme = url_scheme(self.broker_url)
        return self.broker_url if scheme in ("sqlite", "redis", "rediss", *REDIS_CLUSTERED) else "sqlite:///taskq-beat.db"

    @property
    def heartbeat_path(self) -> str:
        import tempfile

        return self.worker_heartbeat_file or os.path.join(tempfile.gettempdir(), "taskq-worker.heartbeat")

    @classmethod
    def from_env(cls, environ: dict[str, str] | None = None) -> Settings:
        env = os.environ if environ is None else environ
        settings = cls()
        for f in fields(cls):
            raw = env.get(ENV_PREFIX + f.name.upper())
            if raw is not None:
                setattr(settings, f.name, _parse_env(f.name, raw, getattr(settings, f.name)))
        return settings


SETTING_NAMES = frozenset(f.name for f in fields(Settings))


def _parse_env(name: str, raw: str, default: Any) -> Any:
    try:
        if isinstance(default, bool):
            if raw.lower() in ("1", "true", "yes", "on"):
                return True
            if raw.lower() in ("0", "false", "no", "off", ""):
                return False
            raise ValueError(raw)
        if isinstance(default, int):
            return int(raw)
        if isinstance(default, float):
            return float(raw)
        if isinstance(default, tuple):
            return tuple(part.strip() for part in raw.split(",") if part.strip())
        if isinstance(default, dict):
            value = json.loads(raw)
            if not isinstance(value, dict):
                raise ValueError("not a JSON object")
            return value
    except ValueError as exc:
        raise ConfigurationError(f"{ENV_PREFIX}{name.upper()}={raw!r} is invalid: {exc}") from None
    return raw or None


DATABASE_DIALECTS = ("postgresql", "postgres", "mysql", "sqlite")  # result backends as db+DIALECT[+driver]://


def url_scheme(url: str) -> str:
    scheme = urlsplit(url).scheme.lower()
    if scheme.startswith("db+"):
        return "db"
    return "kombu" if scheme.startswith("kombu+") else scheme


def check_url(url: str, what: str = "broker") -> str:
    """Return the scheme of a URL we can use, or raise one clear ConfigurationError.

    No I/O: every command checks its URLs this way before it connects (the CLI through
    ``app.check()``), so a typo is one line, never a traceback or a silent default.
    """
    scheme = url_scheme(url)
    if scheme in ("amqp", "amqps") and ";" in url:  # RabbitMQ nodes in failover order
        for part in url.split(";"):
            check_url(part.strip(), what)
        return scheme
    if scheme == "kombu":
        if not url.split("://", 1)[0][len("kombu+"):]:
            raise ConfigurationError(f"{what} URL {redact(url)!r} names no kombu transport")
        return scheme
    if scheme == "db":
        dialect = url.split("://", 1)[0][len("db+"):].split("+", 1)[0].lower()
        if what == "broker" or dialect not in DATABASE_DIALECTS:
            raise ConfigurationError(
                f"{what} URL {redact(url)!r} is not supported"
                " (db+postgresql://, db+mysql:// and db+sqlite:/// are result backends)"
            )
        return scheme
    if scheme == "rpc" and what != "broker":
        if url.split("://", 1)[1:] not in ([""], ["/"]):
            raise ConfigurationError(f"{what} URL {redact(url)!r}: rpc:// takes nothing after it (it uses the broker)")
        return scheme
    if scheme not in KNOWN_SCHEMES or "://" not in url:
        known = ", ".join(s + "://" for s in KNOWN_SCHEMES)
        raise ConfigurationError(f"{what} URL {redact(url)!r} is not supported (use {known} or kombu+TRANSPORT://)")
    if scheme in REDIS_CLUSTERED:
        from taskq.brokers.redis.urls import parse_topology

        parse_topology(url, what)  # several hosts: urlsplit cannot read their ports
        return scheme
    parts = urlsplit(url)
    try:
        parts.port  # noqa: B018 - parsing it is the check
    except ValueError:
        raise ConfigurationError(f"{what} URL {redact(url)!r}: the port must be a number from 0 to 65535") from None
    db = parts.path.strip("/")
    if scheme in ("redis", "rediss") and db and not (db.isascii() and db.isdigit()):
        # redis-py would silently use database 0 instead
        raise ConfigurationError(f"{what} URL {redact(url)!r}: the path must be a database number, e.g. redis://host:6379/0")
    if scheme == "sqlite":
        from taskq.sqlite_db import sqlite_path

        sqlite_path(url)  # raises for sqlite://host/x.db and sqlite:// with no file
    return scheme
