"""TaskQ: configuration, the task registry, and sending. No I/O at import or decoration:
connections open on first send or when a worker starts."""

from __future__ import annotations

import logging
from collections.abc import Callable, Coroutine, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import TYPE_CHECKING, Any, Literal, TypeVar, overload

from taskq import message, transactional
from taskq.app_lifecycle import AppLifecycle
from taskq.backends import create_backend
from taskq.backends.base import ResultBackend
from taskq.brokers import create_broker
from taskq.brokers.base import Broker, Publication
from taskq.builtins import add_builtin_tasks
from taskq.canvas.builtins import register_builtins
from taskq.canvas.embed import CANVAS_OPTIONS, embed_of, group_headers
from taskq.compat import shared
from taskq.compat.app_api import CeleryAppAPI
from taskq.compat.task_options import from_celery
from taskq.config import SETTING_NAMES, Settings, check_url, url_scheme
from taskq.display import redact
from taskq.errors import ConfigurationError, NotRegistered
from taskq.events import publish_hooks
from taskq.pid import current_pid
from taskq.result import AsyncResult
from taskq.routing import Router
from taskq.serialization import Serializer, accepted_content_types, get_serializer
from taskq.signing import Signer, signer_for
from taskq.task import P, R, Task, make_options

if TYPE_CHECKING:
    from taskq.control.client import Control
    from taskq.events.receiver import Events
from taskq.worker.timelimits import check_limit

log = logging.getLogger("taskq")
F = TypeVar("F", bound=Callable[..., Any])

SEND_OPTIONS = frozenset(
    {"countdown", "eta", "expires", "queue", "priority", "task_id", "headers", "retries", "root_id", "parent_id",
     "time_limit", "soft_time_limit", "reply_to", "exchange", "routing_key", "exchange_type"}
    | CANVAS_OPTIONS
)


# Celery(...) arguments taskq has no counterpart for: refused by name, not taken as settings.
CELERY_APP_ARGUMENTS = frozenset(
    {"loader", "amqp", "events", "log", "control", "tasks", "changes", "fixups", "task_cls", "autofinalize",
     "strict_typing"}
)


class TaskQ(CeleryAppAPI, AppLifecycle):
    """The app; ``taskq.Celery`` is this class under Celery's name (docs/migrating-from-celery.md)."""

    def __init__(
        self,
        main: str | None = None,
        *,
        broker: str | None = None,
        backend: str | None = None,
        include: Sequence[str] | None = None,
        config_source: Any = None,
        namespace: str | None = None,
        set_as_current: bool = True,
        **settings: Any,
    ) -> None:
        self.main = main
        self._config_sources = []
        self.conf = Settings.from_env()
        self._init_lifecycle()  # on_configure, on_after_configure, on_after_finalize (app_lifecycle.py)
        self._discoveries = []
        self._imported_defaults = False
        refused = CELERY_APP_ARGUMENTS.intersection(settings)
        if refused:
            raise ConfigurationError(f"Celery(...) argument(s) {', '.join(sorted(refused))} not supported by taskq")
        if config_source is not None:
            self.config_from_object(config_source, namespace=namespace)
        if broker is not None:
            settings["broker_url"] = broker
        if backend is not None:
            settings["result_backend"] = backend
        if include is not None:
            settings["include"] = tuple(include)
        for key, value in settings.items():
            setattr(self.conf, key, value)  # Celery's old names are read with a warning; unknown ones warn
        # keywords beat later app.conf assignments (under today's name, for those taskq has)
        self._pinned = {
            name: getattr(self.conf, name) for name in map(self.conf.canonical_name, settings) if name in SETTING_NAMES
        }
        self.tasks: dict[str, Task[Any, Any]] = {}
        self._pid = -1
        self._broker: Broker | None = None
        self._backend: ResultBackend | None = None
        self._backend_resolved = False
        register_builtins(self)  # celery.map, celery.starmap, celery.chunks: what canvas sends
        add_builtin_tasks(self)  # celery.backend_cleanup, which beat sends daily (builtins.py)
        self._control: Control | None = None
        self._router: tuple[tuple[Any, ...], Router] | None = None
        self._plans: dict[tuple[Any, ...], _SendPlan] = {}  # _send_plan's, for self._plans_of as it was
        self._plans_of: Settings | None = None
        self._plans_at = -1
        shared.app_created(self, set_as_current)  # @shared_task functions join this app

    def __repr__(self) -> str:
        return f"<TaskQ {self.main or '__main__'} broker={redact(self.conf.broker_url)}>"

    # -- configuration ------------------------------------------------------------------
    def finalize(self) -> Settings:
        """Import the app's task modules, apply keyword settings over app.conf, check URLs, and
        freeze (worker and beat call this)."""
        if not self.conf.frozen:
            self.configure()  # on_configure, add_periodic_task, on_after_configure (app_lifecycle.py)
            self.import_default_modules()  # include=, imports, autodiscover_tasks (may still set app.conf)
            for key, value in self._pinned.items():
                if getattr(self.conf, key) != value:
                    log.warning("app.conf.%s was assigned, but TaskQ(...) was given it as a keyword, which wins", key)
                    setattr(self.conf, key, value)
            self.on_after_finalize.send(sender=self)
            self.check()
            self.conf.freeze()
        return self.conf

    def pin(self, name: str, value: Any) -> None:
        """Set a setting as a keyword would (the CLI's -b / --result-backend): app.conf cannot override it."""
        setattr(self.conf, name, value)
        self._pinned[name] = getattr(self.conf, name)

    def check(self) -> None:
        """Raise ConfigurationError for a bad broker or backend URL or serializer, without I/O."""
        check_url(self.conf.broker_url, "broker")
        if self.conf.result_backend_url:
            check_url(self.conf.result_backend_url, "result backend")
        check_url(self.conf.beat_store, "beat store")
        get_serializer(self.conf.task_serializer)
        if self.conf.result_serializer != "json":
            raise ConfigurationError(
                f"result_serializer {self.conf.result_serializer!r} is not supported: results are stored as JSON "
                "(Celery's result document, readable by either library)"
            )
        accepted_content_types(self.conf.accept_content)
        if self.conf.signing_key is not None and not self.conf.signing_max_age > 0:
            raise ConfigurationError(f"signing_max_age must be > 0 seconds, not {self.conf.signing_max_age!r}")
        self.router  # noqa: B018 - building it checks task_routes and task_queues

    @property
    def router(self) -> Router:
        """The routing of this configuration (taskq/routing.py), rebuilt when a routing setting
        is assigned anew (a dict changed in place is not seen, as in Celery)."""
        conf = self.conf
        key = (
            conf.task_routes, conf.task_queues, conf.task_default_queue, conf.task_default_exchange,
            conf.task_default_exchange_type, conf.task_default_routing_key, conf.task_create_missing_queues,
        )
        if self._router is None or self._router[0] != key:  # equal settings route alike
            self._router = (key, Router(conf))
        return self._router[1]

    @property
    def accepted(self) -> frozenset[str]:
        return accepted_content_types(self.conf.accept_content)

    # -- connections (lazy, per process) --------------------------------------------------
    def _check_pid(self) -> None:
        pid = current_pid()
        if self._pid != pid:  # after a fork, never share the parent's connections
            self._pid, self._broker, self._backend, self._backend_resolved = pid, None, None, False

    @property
    def broker(self) -> Broker:
        self._check_pid()
        if self._broker is None:
            self._broker = create_broker(self.conf.broker_url, self.conf)
        return self._broker

    @property
    def backend(self) -> ResultBackend | None:
        self._check_pid()
        if not self._backend_resolved:
            url = self.conf.result_backend_url
            self._backend = create_backend(url, self.conf) if url else None
            self._backend_resolved = True
        return self._backend

    def reply_queue(self) -> str:
        """Where results of the tasks sent now come back: the rpc:// backend's reply queue
        (declared before the first send), "" for a backend that stores results by id (no
        backend is made for that: sending needs none)."""
        if not (self.conf.result_backend or "").startswith("rpc:"):
            return ""
        backend = self.backend
        return backend.reply_queue() if backend is not None else ""

    def close(self) -> None:
        if self._broker is not None:
            self._broker.close()
        if self._backend is not None:
            self._backend.close()
        self._broker, self._backend, self._backend_resolved = None, None, False

    # -- tasks ----------------------------------------------------------------------------
    @overload
    def task(self, fn: Callable[P, Coroutine[Any, Any, R]], /) -> Task[P, R]: ...  # type: ignore[overload-overlap]

    @overload
    def task(self, fn: Callable[P, R], /) -> Task[P, R]: ...

    @overload
    def task(self, *, bind: Literal[True], **options: Any) -> Callable[[Callable[..., R]], Task[..., R]]: ...

    @overload
    def task(self, *, bind: Literal[False] = False, **options: Any) -> Callable[[Callable[P, R]], Task[P, R]]: ...

    def task(  # type: ignore[misc]  # mypy cannot match **options against the keyword overloads
        self, fn: Callable[..., Any] | None = None, /, *, bind: bool = False, **options: Any
    ) -> Any:
        """Register a function as a task: ``@app.task`` or ``@app.task(name=..., max_retries=...)``."""

        def register(func: Callable[..., Any]) -> Task[Any, Any]:
            name = options.pop("name", None) or self.task_name(func)
            taskq_options = from_celery(name, options, self.conf.task_serializer)
            task: Task[Any, Any] = Task(self, func, make_options(name, func, {**taskq_options, "bind": bind}))
            self.tasks[name] = task
            return task

        return register(fn) if fn is not None else register

    def task_name(self, fn: Callable[..., Any]) -> str:
        """Celery's rule: ``<module>.<function>``; ``__main__`` becomes the app's main name."""
        module = fn.__module__
        if module == "__main__" and self.main:
            module = self.main
        return f"{module}.{fn.__name__}"

    def periodic(self, schedule: Any, **options: Any) -> Callable[[F], F]:
        """Run a function periodically through beat: ``@app.periodic(every(seconds=30))``.

        Options as a beat_schedule entry (args, kwargs, options, misfire_grace_time, ...);
        the function becomes a task unless it is one already."""
        from taskq.beat.core.beat_schedule import periodic

        return periodic(self, schedule, **options)

    def get_task(self, name: str) -> Task[Any, Any]:
        try:
            return self.tasks[name]
        except KeyError:
            raise NotRegistered(f"unknown task {name!r}") from None

    # -- sending --------------------------------------------------------------------------
    def build_publication(
        self, name: str, args: Sequence[Any] | None = None, kwargs: dict[str, Any] | None = None, **options: Any
    ) -> Publication:
        """The message for a call, not yet sent, when it goes to one queue (``queue=`` given)."""
        pubs = self.build_publications(name, args, kwargs, **options)
        if len(pubs) != 1:
            raise ConfigurationError(f"{name}: its route reaches {len(pubs)} queues; give queue= to send it to one")
        return pubs[0]

    def build_publications(
        self, name: str, args: Sequence[Any] | None = None, kwargs: dict[str, Any] | None = None, **options: Any
    ) -> list[Publication]:
        """The messages of a call, not yet sent (beat enqueues them inside its own transaction):
        one, or a copy per queue where a broker without exchanges emulates a fanout/topic one.
        A task registered here lends its own options (queue, priority, ...) as defaults."""
        _check_arguments(args, kwargs)
        options = self._with_task_defaults(name, options)
        return self._publications(name, args, kwargs, self._send_plan(name, options), options.get("task_id"))

    def _with_task_defaults(self, name: str, options: dict[str, Any]) -> dict[str, Any]:
        """The options of a send by name over the registered task's own, as Celery 5.5+ (and
        Celery's canvas and beat, through apply_async) send them."""
        task = self.tasks.get(name)
        defaults = task._default_options() if task is not None else None
        return {**defaults, **options} if defaults else options

    def _targets(self, name: str, args: Sequence[Any] | None, kwargs: dict[str, Any] | None,
                 options: dict[str, Any]) -> tuple[tuple[_Target, ...], int | None]:
        """Where a call goes (its route's priority beside): an exchange and routing key on
        RabbitMQ, else the queues the exchange would reach (taskq/routing.py)."""
        dest = self.router.destination(name, args or (), kwargs, options, self.tasks.get(name))
        if not dest.exchange:
            return ((dest.routing_key, "", ""),), dest.priority
        if url_scheme(self.conf.broker_url) in ("amqp", "amqps"):
            if self.conf.signing_key is not None:
                raise ConfigurationError(
                    f"{name}: signed messages are signed for one queue; routing through exchange "
                    f"{dest.exchange!r} is not supported with signing_key (route to a queue)"
                )
            return ((dest.queue.name if dest.queue else "", dest.exchange, dest.routing_key),), dest.priority
        queues = self.router.topology.queues_for(dest.exchange, dest.routing_key)
        if not queues:
            raise ConfigurationError(
                f"{name}: no queue of task_queues is bound to exchange {dest.exchange!r} "
                f"({dest.exchange_type}) with a key matching {dest.routing_key!r}"
            )
        return tuple((queue, "", "") for queue in queues), dest.priority

    def _send_plan(self, name: str, options: dict[str, Any]) -> _SendPlan:
        """The plan of a send, kept per task name and options while the settings are not
        assigned again, when nothing in it depends on the clock or the call: ``delay()``
        resolved the same routes, serializer, signer and limits on every call (4 us of 12
        to build its message; docs/performance.md, the producer's ``delay()``)."""
        conf = self.conf
        changes = conf.changes  # read first: a plan made while a setting is assigned is never used later
        key = _plan_key(changes, name, options)
        if key is None or (conf.result_backend or "").startswith("rpc:"):  # rpc: a reply queue per process
            return self._new_send_plan(name, options)
        if self._plans_of is not conf or self._plans_at != changes:
            self._plans.clear()
            self._plans_of, self._plans_at = conf, changes
        plan = self._plans.get(key)
        if plan is None:
            if len(self._plans) >= _PLANS_KEPT:
                self._plans.clear()
            plan = self._plans[key] = self._new_send_plan(name, dict(options))  # a copy: the caller's may change
        return plan

    def _new_send_plan(self, name: str, options: dict[str, Any]) -> _SendPlan:
        """Check and resolve send options once, however many calls share them."""
        if options and not SEND_OPTIONS.issuperset(options):
            unknown = set(options) - SEND_OPTIONS
            raise ConfigurationError(f"unknown send option(s): {', '.join(sorted(unknown))}")
        targets: tuple[_Target, ...] | None = None
        routed_priority = None
        if self.router.by_name_only:  # else routed per call: router functions see the arguments
            targets, routed_priority = self._targets(name, None, None, options)
        priority = options.get("priority")
        priority = (routed_priority if priority is None else priority) or 0
        if not isinstance(priority, int) or not 0 <= priority <= 9:
            raise ConfigurationError(f"priority must be an integer 0-9, not {priority!r}")
        eta = expires_at = None
        if options:  # the clock is read only when a time option needs it
            now = datetime.now(timezone.utc)
            eta = _when(options.get("eta"), "eta")
            if options.get("countdown") is not None:
                eta = _after(now, options["countdown"], "countdown")
            expires = options.get("expires")
            expires_at = (
                _after(now, expires, "expires") if isinstance(expires, (int, float)) else _when(expires, "expires")
            )
        return _SendPlan(
            targets=targets,
            options=options,
            priority=priority,
            eta=eta,
            expires=expires_at,
            retries=int(options.get("retries") or 0),
            root_id=options.get("root_id"),
            parent_id=options.get("parent_id"),
            headers=group_headers(options),
            embed=embed_of(options),
            timelimit=(
                check_limit(options.get("time_limit"), "time_limit"),
                check_limit(options.get("soft_time_limit"), "soft_time_limit"),
            ),
            serializer=get_serializer(self.conf.task_serializer),
            signer=signer_for(self.conf),
            reply_to=options.get("reply_to") or self.reply_queue(),
        )

    def _publications(
        self,
        name: str,
        args: Sequence[Any] | None,
        kwargs: dict[str, Any] | None,
        plan: _SendPlan,
        task_id: str | None,
    ) -> list[Publication]:
        """The messages of one call whose arguments were checked (``_check_arguments``)."""
        targets, priority = plan.targets, plan.priority
        if targets is None:
            targets, routed_priority = self._targets(name, args, kwargs, plan.options)
            if plan.options.get("priority") is None and routed_priority is not None:
                priority = routed_priority
        task_id = task_id or message.new_task_id()
        return [self._publication(name, args, kwargs, plan, task_id, target, priority) for target in targets]

    def _publication(
        self,
        name: str,
        args: Sequence[Any] | None,
        kwargs: dict[str, Any] | None,
        plan: _SendPlan,
        task_id: str,
        target: _Target,
        priority: int,
    ) -> Publication:
        queue, exchange, routing_key = target
        envelope = message.build(
            name,
            tuple(args or ()),
            dict(kwargs or {}),
            task_id=task_id,
            serializer=plan.serializer,
            retries=plan.retries,
            eta=plan.eta,
            expires=plan.expires,
            priority=priority,
            root_id=plan.root_id,
            parent_id=plan.parent_id,
            headers=plan.headers,
            embed=plan.embed,
            signer=plan.signer,
            queue=queue,
            timelimit=plan.timelimit,
            reply_to=plan.reply_to,
        )
        return Publication(queue, envelope, plan.eta.timestamp() if plan.eta else None, exchange, routing_key)

    def send_task(
        self, name: str, args: Sequence[Any] | None = None, kwargs: dict[str, Any] | None = None, **options: Any
    ) -> AsyncResult[Any]:
        """Send a task by name (it need not be registered here; if it is, its own options,
        such as ``queue``, are the defaults, as in Celery 5.5+); ``using=conn`` or an
        enclosing ``app.transaction(conn)`` writes it in that connection's transaction."""
        conn = transactional.pop_connection(self, options)
        pubs = self.build_publications(name, args, kwargs, **options)
        if conn is not None:
            transactional.enqueue(self, conn, pubs)
        elif publish_hooks.watched(self):
            publish_hooks.before(self, pubs)
            self.publish(pubs)
            publish_hooks.after(self, pubs)
        else:
            self.publish(pubs)
        return AsyncResult(pubs[0].envelope.id, self)

    def publish(self, pubs: Sequence[Publication]) -> None:
        """Send built messages: one through ``publish`` (the fast path), several or one for an
        exchange through ``publish_many``."""
        if len(pubs) == 1 and not pubs[0].exchange:
            pub = pubs[0]
            self.broker.publish(pub.queue, pub.envelope, pub.eta)
        else:
            self.broker.publish_many(pubs)

    def send_many(
        self, name: str, calls: Sequence[tuple[Sequence[Any], dict[str, Any]]], **options: Any
    ) -> list[AsyncResult[Any]]:
        """Send many calls of one task in few round trips (the broker chunks them).

        Calls are encoded as the broker takes them, so a broker that sends in chunks encodes
        the next chunk while the last one is on its way. Argument types are checked before
        anything is sent; an argument the serializer cannot encode stops the send at its
        chunk (the chunks before it were sent) with the serializer's error."""
        if "task_id" in options:
            raise ConfigurationError("task_id cannot be given for many calls")
        conn = transactional.pop_connection(self, options)
        options = self._with_task_defaults(name, options)
        plan = self._send_plan(name, options)
        calls = list(calls)  # any iterable of calls; indexed below
        for args, kwargs in calls:
            _check_arguments(args, kwargs)
        ids = [message.new_task_id() for _ in range(len(calls))]
        if plan.targets is not None and len(plan.targets) == 1:
            target, priority = plan.targets[0], plan.priority
            pubs: Sequence[Publication] = _LazyPublications(
                lambda i, task_id: self._publication(name, *calls[i], plan, task_id, target, priority), ids
            )
        else:  # routed per call, or copies per queue: built at once
            pubs = [pub for i, task_id in enumerate(ids) for pub in self._publications(name, *calls[i], plan, task_id)]
        if conn is not None:
            transactional.enqueue(self, conn, pubs)
        elif publish_hooks.watched(self):
            built = [pubs[i] for i in range(len(pubs))]
            publish_hooks.before(self, built)
            self.broker.publish_many(built)
            publish_hooks.after(self, built)
        else:
            self.broker.publish_many(pubs)  # each broker chunks as its protocol likes (confirms in flight)
        return [AsyncResult(task_id, self) for task_id in ids]

    def transaction(self, conn: Any) -> AbstractContextManager[Any]:
        """``with app.transaction(conn):`` tasks sent in the block are written in a transaction
        on your connection (psycopg, SQLAlchemy, Django): rolled back, they never run;
        committed, they run. On a broker other than PostgreSQL they go through the outbox."""
        return transactional.transaction(self, conn)
    @property
    def control(self) -> Control:
        """Remote control of running workers, as Celery's ``app.control``."""
        if self._control is None:
            from taskq.control.client import Control

            self._control = Control(self)
        return self._control

    @property
    def events(self) -> Events:
        """The fleet's events, as Celery's ``app.events`` (``app.events.Receiver(handlers=...)``)."""
        from taskq.events.receiver import Events

        return Events(self)

    def AsyncResult(self, task_id: str) -> AsyncResult[Any]:
        return AsyncResult(task_id, self)


_Target = tuple[str, str, str]  # queue, exchange ("" for the queue itself), routing key
# Send options whose plan is the same on every call when their values are plain constants;
# the others read the clock (countdown, eta, expires) or carry per-call objects (canvas, headers).
# (retries, root_id and parent_id are left out too: they differ in nearly every send that has them).
_CONSTANT_OPTIONS = frozenset(
    {"queue", "exchange", "routing_key", "exchange_type", "priority", "time_limit", "soft_time_limit"}
)
_PLANS_KEPT = 1024


def _plan_key(changes: int, name: str, options: dict[str, Any]) -> tuple[Any, ...] | None:
    """The key of a send plan that can be kept (under ``Settings.changes``), None when it cannot."""
    if not options:
        return (changes, name)
    if not _CONSTANT_OPTIONS.issuperset(options):
        return None
    items = tuple(options.items())
    for _, value in items:
        if value is not None and type(value) not in (str, int, float):  # a Queue object, a bool
            return None
    return (changes, name, *items)


@dataclass(frozen=True, slots=True)
class _SendPlan:
    """Send options checked and resolved, shared by every call of one send."""

    targets: tuple[_Target, ...] | None  # None: routed per call (a router function sees the arguments)
    options: dict[str, Any]
    priority: int
    eta: datetime | None
    expires: datetime | None
    retries: int
    root_id: str | None
    parent_id: str | None
    headers: dict[str, Any] | None
    embed: dict[str, Any] | None  # callbacks, errbacks, chain, chord (taskq/canvas/embed.py)
    timelimit: tuple[float | None, float | None]  # [hard, soft], the header Celery reads
    serializer: Serializer
    signer: Signer | None
    reply_to: str


class _LazyPublications(Sequence[Publication]):
    """The publications of send_many, built when a broker takes them, and kept only for the
    latest few thousand: a huge send holds a window, not every message, and the cyclic
    garbage collector does not rescan thousands of envelopes already sent (a fifth of a bulk
    send's time, measured). Ids are drawn up front, so an index built again (a broker that
    retries after a lost connection) is the same message."""

    KEEP = 4096

    def __init__(self, build: Callable[[int, str], Publication], ids: list[str]) -> None:
        self.ids = ids
        self._build = build
        self._kept: dict[int, Publication] = {}

    def __len__(self) -> int:
        return len(self.ids)

    @overload
    def __getitem__(self, index: int) -> Publication: ...
    @overload
    def __getitem__(self, index: slice) -> list[Publication]: ...
    def __getitem__(self, index: int | slice) -> Publication | list[Publication]:
        if isinstance(index, slice):
            return [self._get(i) for i in range(*index.indices(len(self.ids)))]
        if index < 0:
            index += len(self.ids)
        if not 0 <= index < len(self.ids):
            raise IndexError(index)
        return self._get(index)

    def _get(self, index: int) -> Publication:
        publication = self._kept.get(index)
        if publication is None:
            publication = self._kept[index] = self._build(index, self.ids[index])
            if len(self._kept) > self.KEEP:
                del self._kept[next(iter(self._kept))]  # the oldest: dicts keep insertion order
        return publication


def _check_arguments(args: Any, kwargs: Any) -> None:
    if args is not None and not isinstance(args, (list, tuple)):
        raise ConfigurationError(f"args must be a list or tuple, not {type(args).__name__}")
    if kwargs is not None and not isinstance(kwargs, dict):
        raise ConfigurationError(f"kwargs must be a dict, not {type(kwargs).__name__}")


def _after(now: datetime, seconds: Any, name: str) -> datetime:
    """``now`` plus a number of seconds; inf, nan and times past year 9999 are one clear error."""
    try:
        return now + timedelta(seconds=float(seconds))
    except (OverflowError, ValueError, TypeError):
        raise ConfigurationError(f"{name} must be a finite number of seconds, not {seconds!r}") from None


def _when(value: Any, name: str) -> datetime | None:
    if value is None:
        return None
    if isinstance(value, str):
        value = message.parse_time(value, name)
    if not isinstance(value, datetime):
        raise ConfigurationError(f"{name} must be a datetime or ISO-8601 string, not {type(value).__name__}")
    return value if value.tzinfo else value.replace(tzinfo=timezone.utc)
