"""Where a message goes: ``task_routes``, ``task_queues`` and the ``task_default_*`` settings
with Celery's semantics (celery/app/routes.py for the lookup, celery/app/amqp.py for the
publish target), written for taskq.

* A route source is a dict (names, ``*`` globs, ``re.compile`` keys), a function
  ``(name, args, kwargs, options, task=) -> route | None``, an object with
  ``route_for_task(name, args, kwargs)``, a dotted name of either, or a list of those; the
  first that answers wins. A route is a queue name or a dict of ``queue``, ``exchange``,
  ``exchange_type``, ``routing_key``, ``priority``.
* Options given to the call (``apply_async(queue=...)``) and the task's own
  (``@app.task(queue=...)``) win over the route, key by key, as in Celery's code.
* ``task_queues`` holds kombu ``Queue`` objects (``taskq.Queue`` is kombu's), or Celery's old
  dict form. A queue not in it exists anyway (``task_create_missing_queues``): a direct
  exchange of its own name, as Celery makes it.

The result is a Destination: the exchange and routing key RabbitMQ publishes to, and the
routed queue. Brokers without exchanges use ``Topology.queues_for``: the queues of
``task_queues`` bound to that exchange with a matching key (direct: equal; topic: AMQP's
``*``/``#`` patterns; fanout: every bound queue), as kombu's virtual transports match them.
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from taskq.config import Settings
from taskq.errors import ConfigurationError

EXCHANGE_TYPES = ("direct", "topic", "fanout", "headers")
_NO_PARTS = (None, None, None, None)  # a call with no routing option of its own
ROUTE_KEYS = frozenset({"queue", "exchange", "exchange_type", "routing_key", "priority"})


@dataclass(frozen=True, slots=True)
class ExchangeSpec:
    name: str
    type: str = "direct"
    durable: bool = True
    auto_delete: bool = False


@dataclass(frozen=True, slots=True)
class Binding:
    exchange: ExchangeSpec
    routing_key: str


@dataclass(frozen=True, slots=True)
class QueueSpec:
    """A queue and the exchanges it is bound to (every binding, the main one first)."""

    name: str
    bindings: tuple[Binding, ...]
    arguments: Mapping[str, Any] | None = None  # x-arguments given with the Queue, else taskq's
    configured: bool = False  # from task_queues (declared with its bindings on RabbitMQ)

    @property
    def exchange(self) -> ExchangeSpec | None:
        return self.bindings[0].exchange if self.bindings else None

    @property
    def routing_key(self) -> str:
        return self.bindings[0].routing_key if self.bindings else self.name


@dataclass(frozen=True, slots=True)
class Destination:
    """Where one message goes. ``exchange`` "" is the default exchange: ``routing_key`` is then
    the queue's name."""

    exchange: str
    routing_key: str
    queue: QueueSpec | None  # the routed queue (declared before publishing), None for exchange-only routes
    exchange_type: str = "direct"
    priority: int | None = None  # from the route; the call's own priority wins


class Topology:
    """The queues and exchanges the settings describe, with Celery's defaults filled in."""

    def __init__(self, conf: Settings) -> None:
        self.default_queue = conf.task_default_queue
        self.default_exchange = ExchangeSpec(
            conf.task_default_exchange or conf.task_default_queue, _exchange_type(conf.task_default_exchange_type)
        )
        self.default_routing_key = conf.task_default_routing_key or conf.task_default_queue
        self.create_missing = conf.task_create_missing_queues
        self.queues: dict[str, QueueSpec] = {}
        for queue in _queue_list(conf.task_queues):
            self.queues[queue.name] = self._with_defaults(queue)
        if not self.queues and self.default_queue:  # Celery's one default queue
            self.queues[self.default_queue] = QueueSpec(
                self.default_queue, (Binding(self.default_exchange, self.default_routing_key),), configured=True
            )

    def _with_defaults(self, queue: QueueSpec) -> QueueSpec:
        """Celery's Queues._add: a queue without an exchange gets the default exchange, one
        without a routing key the default routing key."""
        if not queue.bindings:
            return QueueSpec(
                queue.name, (Binding(self.default_exchange, self.default_routing_key),), queue.arguments, True
            )
        first = queue.bindings[0]
        exchange = first.exchange if first.exchange.name else self.default_exchange
        key = first.routing_key or self.default_routing_key
        return QueueSpec(queue.name, (Binding(exchange, key), *queue.bindings[1:]), queue.arguments, True)

    def queue(self, name: str) -> QueueSpec:
        """The queue of that name; one not configured is made as Celery makes it (a direct
        exchange of its own name), unless task_create_missing_queues is off."""
        found = self.queues.get(name)
        if found is not None:
            return found
        if not self.create_missing:
            raise ConfigurationError(f"queue {name!r} is missing from task_queues (task_create_missing_queues is off)")
        return QueueSpec(name, (Binding(ExchangeSpec(name), name),))

    def configured(self, name: str) -> QueueSpec | None:
        return self.queues.get(name)

    def exchange(self, name: str) -> ExchangeSpec | None:
        """How an exchange is declared: as a queue of task_queues binds it, else the default's."""
        for queue in self.queues.values():
            for binding in queue.bindings:
                if binding.exchange.name == name:
                    return binding.exchange
        return self.default_exchange if name == self.default_exchange.name else None

    def queues_for(self, exchange: str, routing_key: str) -> list[str]:
        """The configured queues a message published to ``exchange`` with ``routing_key``
        reaches, matched as the exchange's type says."""
        found = []
        for queue in self.queues.values():
            for binding in queue.bindings:
                if binding.exchange.name == exchange and _matches(binding, routing_key):
                    found.append(queue.name)
                    break
        return found

    def consumed(self) -> list[str]:
        """The queues a worker without -Q consumes: every configured one (Celery's default)."""
        return list(self.queues)


def _matches(binding: Binding, routing_key: str) -> bool:
    kind = binding.exchange.type
    if kind == "fanout":
        return True
    if kind == "topic":
        return topic_matches(binding.routing_key, routing_key)
    return binding.routing_key == routing_key  # direct (headers exchanges match on headers: not emulated)


@lru_cache(maxsize=4096)
def topic_matches(pattern: str, routing_key: str) -> bool:
    """AMQP topic matching: dot-separated words, ``*`` is one word, ``#`` zero or more."""
    return _words_match(tuple(pattern.split(".")), tuple(routing_key.split(".")))


def _words_match(pattern: tuple[str, ...], words: tuple[str, ...]) -> bool:
    if not pattern:
        return not words
    head, rest = pattern[0], pattern[1:]
    if head == "#":
        return any(_words_match(rest, words[skip:]) for skip in range(len(words) + 1))
    if not words:
        return False
    return (head == "*" or head == words[0]) and _words_match(rest, words[1:])


# -- task_queues ----------------------------------------------------------------------------
def _queue_list(value: Any) -> list[QueueSpec]:
    if not value:
        return []
    if isinstance(value, Mapping):  # Celery's old form: {name: {exchange:, exchange_type:, routing_key:}}
        return [_queue_from_dict(str(name), options) for name, options in value.items()]
    if isinstance(value, (list, tuple, set, frozenset)):
        return [as_queue(q) for q in value]
    raise ConfigurationError(f"task_queues must be a list of Queue objects, not {type(value).__name__}")


def as_queue(value: Any) -> QueueSpec:
    """A QueueSpec from kombu's ``Queue`` (taskq.Queue), or a queue name."""
    if isinstance(value, QueueSpec):
        return value
    if isinstance(value, str):
        return QueueSpec(value, ())
    if type(value).__name__ == "Broadcast":  # kombu.common: one auto-delete queue per consumer
        shown = getattr(value, "alias", None) or value.name
        raise ConfigurationError(f"task_queues: Broadcast queue {shown!r} is not supported (use a fanout Exchange)")
    name = getattr(value, "name", None)
    if not isinstance(name, str) or not hasattr(value, "bindings"):
        raise ConfigurationError(f"task_queues: {value!r} is not a Queue (use taskq.Queue / kombu.Queue)")
    bindings: list[Binding] = []
    if getattr(value, "exchange", None) is not None:
        bindings.append(Binding(as_exchange(value.exchange), value.routing_key or ""))
    for extra in value.bindings or ():
        bindings.append(Binding(as_exchange(extra.exchange), extra.routing_key or ""))
    arguments = getattr(value, "queue_arguments", None)
    return QueueSpec(name, tuple(bindings), dict(arguments) if arguments else None, True)


def _queue_from_dict(name: str, options: Any) -> QueueSpec:
    if not isinstance(options, Mapping):
        raise ConfigurationError(f"task_queues[{name!r}] must be a dict of exchange/exchange_type/routing_key")
    exchange = str(options.get("exchange") or "")
    kind = _exchange_type(options.get("exchange_type") or "direct")
    key = options.get("routing_key") or options.get("binding_key") or name
    if not exchange:
        return QueueSpec(name, (), options.get("queue_arguments"), True)
    return QueueSpec(name, (Binding(ExchangeSpec(exchange, kind), str(key)),), options.get("queue_arguments"), True)


def as_exchange(value: Any) -> ExchangeSpec:
    """An ExchangeSpec from kombu's ``Exchange`` (taskq.Exchange) or a name (direct)."""
    if isinstance(value, ExchangeSpec):
        return value
    if isinstance(value, str):
        return ExchangeSpec(value)
    name = getattr(value, "name", None)
    if not isinstance(name, str):
        raise ConfigurationError(f"{value!r} is not an Exchange (use taskq.Exchange / kombu.Exchange)")
    return ExchangeSpec(
        name,
        _exchange_type(getattr(value, "type", None) or "direct"),
        bool(getattr(value, "durable", True)),
        bool(getattr(value, "auto_delete", False)),
    )


def _exchange_type(kind: Any) -> str:
    if kind not in EXCHANGE_TYPES:
        raise ConfigurationError(f"exchange type {kind!r} is not one of {', '.join(EXCHANGE_TYPES)}")
    return str(kind)


# -- task_routes ----------------------------------------------------------------------------
RouteFn = Callable[[str, Sequence[Any], Mapping[str, Any], dict[str, Any], Any], Any]


class MapRoute:
    """A dict of routes: exact names first, then the patterns (globs and ``re.compile`` keys)
    in their order."""

    def __init__(self, routes: Mapping[Any, Any] | Sequence[tuple[Any, Any]]) -> None:
        items = routes.items() if isinstance(routes, Mapping) else routes
        self.exact: dict[str, Any] = {}
        self.patterns: list[tuple[re.Pattern[str], Any]] = []
        for key, route in items:
            if isinstance(key, re.Pattern):
                self.patterns.append((key, route))
            elif isinstance(key, str) and "*" in key:
                self.patterns.append((re.compile(fnmatch.translate(key)), route))
            elif isinstance(key, str):
                self.exact[key] = route
            else:
                raise ConfigurationError(f"task_routes: a key must be a task name, glob or re.compile(), not {key!r}")

    def __call__(self, name: str, *_: Any, **__: Any) -> Any:
        if name in self.exact:
            return self.exact[name]
        for regex, route in self.patterns:
            if regex.match(name):
                return route
        return None


def prepare(routes: Any) -> list[Any]:
    """``task_routes`` as a list of route sources (Celery's routes.prepare)."""
    if routes is None:
        return []
    if not isinstance(routes, (list, tuple)):
        routes = (routes,)
    return [_source(route) for route in routes]


def _source(route: Any) -> Any:
    if isinstance(route, (Mapping, list, tuple)):
        return MapRoute(route)
    if isinstance(route, str):
        return _import_router(route)
    if callable(route) or hasattr(route, "route_for_task"):
        return route
    raise ConfigurationError(f"task_routes: {route!r} is not a dict, a router function or a dotted name of one")


def _import_router(path: str) -> Any:
    """``"proj.routers.route_task"`` or ``"proj.routers:MyRouter"``: a class with
    route_for_task is instantiated, as Celery does."""
    from importlib import import_module

    module_name, _, attr = path.partition(":") if ":" in path else path.rpartition(".")
    try:
        router = getattr(import_module(module_name), attr)
    except (ImportError, AttributeError, ValueError) as exc:
        raise ConfigurationError(f"task_routes: cannot import router {path!r}: {exc}") from None
    if isinstance(router, type) and hasattr(router, "route_for_task"):
        router = router()
    return router


class Router:
    """Resolve a call's destination from the settings (built once per app; no I/O)."""

    def __init__(self, conf: Settings) -> None:
        self.topology = Topology(conf)
        self.sources = prepare(conf.task_routes)
        # Dicts route by name alone, so their answers are cached; functions see the arguments.
        self.by_name_only = all(isinstance(s, MapRoute) for s in self.sources)
        self._cache: dict[tuple[Any, ...], Destination] = {}

    def destination(
        self,
        name: str,
        args: Sequence[Any] = (),
        kwargs: Mapping[str, Any] | None = None,
        options: Mapping[str, Any] | None = None,
        task: Any = None,
    ) -> Destination:
        """Where the call goes; ``Destination.priority`` is the route's (the caller applies its own)."""
        options = options or {}
        key: tuple[Any, ...] | None = None
        if self.by_name_only:
            get = options.get
            parts = (get("queue"), get("exchange"), get("routing_key"), get("exchange_type"))
            if parts == _NO_PARTS or all(v is None or type(v) is str for v in parts):  # a Queue object: not cached
                key = (name, *parts)
                cached = self._cache.get(key)
                if cached is not None:
                    return cached
        if "priority" in options:
            options = {k: v for k, v in options.items() if k != "priority"}
        found = self._destination(self.route(options, name, args, kwargs or {}, task))
        if key is not None and len(self._cache) < 4096:
            self._cache[key] = found
        return found

    def route(
        self, options: Mapping[str, Any], name: str, args: Sequence[Any], kwargs: Mapping[str, Any], task: Any
    ) -> dict[str, Any]:
        """The routing options (Celery's Router.route): the call's own, over the first route
        that answers, else the default queue."""
        given = {k: v for k, v in options.items() if k in ROUTE_KEYS and v is not None}
        given = self._expand(given)
        for source in self.sources:
            route = self._ask(source, name, args, kwargs, dict(options), task)
            if route:
                return {**self._expand(_route_dict(route, name)), **given}
        if "queue" not in given:
            return {**self._expand({"queue": self.topology.default_queue}), **given}
        return given

    def _ask(
        self, source: Any, name: str, args: Sequence[Any], kwargs: Mapping[str, Any], options: dict[str, Any], task: Any
    ) -> Any:
        if hasattr(source, "route_for_task"):  # Celery's pre-4.0 router classes
            return source.route_for_task(name, args, kwargs)
        return source(name, args, kwargs, options, task=task)

    def _expand(self, route: dict[str, Any]) -> dict[str, Any]:
        """Turn the ``queue`` of a route into its QueueSpec (Celery's expand_destination)."""
        queue = route.pop("queue", None)
        if queue:
            if isinstance(queue, str):
                route["queue"] = self.topology.queue(queue)
            else:
                route["queue"] = as_queue(queue)
        return route

    def _destination(self, routed: dict[str, Any]) -> Destination:
        """The exchange and routing key to publish to (Celery's send_task_message)."""
        queue: QueueSpec | None = routed.get("queue")
        exchange = routed.get("exchange")
        if isinstance(exchange, str) or exchange is None:
            exchange_name = exchange
        else:
            exchange_name = as_exchange(exchange).name
        routing_key = routed.get("routing_key")
        if queue is None and exchange_name is None:
            queue = self.topology.queue(self.topology.default_queue)
        kind = routed.get("exchange_type")
        if kind is None:
            kind = queue.exchange.type if queue is not None and queue.exchange is not None else "direct"
        kind = _exchange_type(kind)
        priority = _priority(routed.get("priority"))
        if (not exchange_name or not routing_key) and kind == "direct":
            if queue is None:
                raise ConfigurationError(f"a route to exchange {exchange_name!r} needs a routing_key or a queue")
            return Destination("", queue.name, queue, kind, priority)
        if exchange_name is None:
            assert queue is not None
            exchange_name = queue.exchange.name if queue.exchange and queue.exchange.name else ""
            exchange_name = exchange_name or self.topology.default_exchange.name
            routing_key = routing_key or queue.routing_key or self.topology.default_routing_key
        return Destination(exchange_name, str(routing_key or ""), queue, kind, priority)


def _route_dict(route: Any, name: str) -> dict[str, Any]:
    if isinstance(route, str):
        return {"queue": route}
    if not isinstance(route, Mapping):
        raise ConfigurationError(f"the route of {name!r} must be a queue name or a dict, not {route!r}")
    unknown = set(route) - ROUTE_KEYS
    if unknown:
        raise ConfigurationError(
            f"the route of {name!r} has key(s) taskq does not route by: {', '.join(sorted(unknown))} "
            f"(known: {', '.join(sorted(ROUTE_KEYS))})"
        )
    return {k: v for k, v in route.items() if v is not None}


def _priority(value: Any) -> int | None:
    if value is None:
        return None
    if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value <= 9:
        raise ConfigurationError(f"a route's priority must be an integer 0-9, not {value!r}")
    return value
