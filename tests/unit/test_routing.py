"""Routing against Celery's own: the same settings, the same calls, the same exchange,
routing key, declared queue and priority as a Celery app publishes with."""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from typing import Any

import pytest
from celery import Celery
from celery.signals import before_task_publish
from kombu import Exchange, Queue, binding

from taskq import TaskQ
from taskq.errors import ConfigurationError
from taskq.routing import Router, Topology, topic_matches

Outcome = tuple[str, str, str | None, int | None]  # exchange, routing key, declared queue, priority


def route_by_function(name: str, args: Any, kwargs: Any, options: Any, task: Any = None, **kw: Any) -> Any:
    if name.startswith("fn."):
        return {"queue": "fn-" + str(len(args))}
    return None


class LegacyRouter:
    def route_for_task(self, task: str, args: Any = None, kwargs: Any = None) -> Any:
        return "legacy" if task == "old.style" else None


TOPIC = Exchange("events", type="topic")
FANOUT = Exchange("broadcast", type="fanout")
QUEUES = (
    Queue("default", Exchange("default"), routing_key="default"),
    Queue("audit", TOPIC, routing_key="audit.*"),
    Queue("everything", TOPIC, routing_key="#"),
    Queue("fan-a", FANOUT),
    Queue("fan-b", FANOUT),
    Queue("video", Exchange("media"), routing_key="media.video"),
)

CONFIGS: dict[str, dict[str, Any]] = {
    "plain": {},
    "dict": {"task_routes": {"shop.send": {"queue": "emails"}, "shop.*": "shop", re.compile(r"^x\.\d+$"): "digits"}},
    "queues": {
        "task_queues": QUEUES,
        "task_default_queue": "default",
        "task_routes": {
            "audit.*": {"exchange": "events", "exchange_type": "topic", "routing_key": "audit.login"},
            "video.*": {"queue": "video"},
            "fan.*": {"queue": "fan-a"},
            "topic.direct": {"exchange": "events", "routing_key": "audit.x"},
            "prio.*": {"queue": "default", "priority": 7},
            "keyed": {"queue": "video", "routing_key": "media.other"},
        },
    },
    "chain": {
        "task_routes": (
            route_by_function,
            LegacyRouter(),
            {"old.style": "never", "fn.*": "never", "*": {"queue": "catchall"}},
        )
    },
    "pairs": {"task_routes": [[("a.b", "ab"), ("a.*", "a-any")]]},
    "defaults": {
        "task_default_queue": "work",
        "task_default_exchange": "tasks",
        "task_default_exchange_type": "topic",
        "task_default_routing_key": "task.default",
    },
}

CALLS: list[tuple[str, tuple[Any, ...], dict[str, Any]]] = [
    ("shop.send", (), {}),
    ("shop.refund", (), {}),
    ("x.12", (), {}),
    ("x.1a", (), {}),
    ("other.task", (), {}),
    ("audit.login", (), {}),
    ("video.encode", (), {}),
    ("fan.out", (), {}),
    ("topic.direct", (), {}),
    ("prio.high", (), {}),
    ("prio.high", (), {"priority": 2}),
    ("keyed", (), {}),
    ("fn.x", (1, 2), {}),
    ("old.style", (), {}),
    ("a.b", (), {}),
    ("a.c", (), {}),
    ("shop.send", (), {"queue": "override"}),
    ("anything", (), {"exchange": "events", "routing_key": "audit.manual"}),
    ("anything", (), {"queue": "video", "routing_key": "media.video"}),
    ("anything", (), {"routing_key": "only.key"}),
]


@pytest.fixture(scope="module")
def celery_publishes() -> Iterator[list[Outcome]]:
    seen: list[Outcome] = []

    def capture(
        exchange: Any = None, routing_key: Any = None, declare: Any = None, properties: Any = None, **_: Any
    ) -> None:
        name = exchange.name if isinstance(exchange, Exchange) else exchange
        queue = declare[0].name if declare else None
        seen.append((str(name or ""), str(routing_key or ""), queue, (properties or {}).get("priority")))

    before_task_publish.connect(capture)
    yield seen
    before_task_publish.disconnect(capture)


def celery_outcome(
    seen: list[Outcome], conf: Mapping[str, Any], name: str, args: tuple[Any, ...], options: dict[str, Any]
) -> Outcome:
    app = Celery("oracle", broker="memory://", set_as_current=False)
    app.conf.update(conf)
    before = len(seen)
    app.send_task(name, args, **options)
    assert len(seen) == before + 1
    return seen[-1]


def taskq_outcome(conf: Mapping[str, Any], name: str, args: tuple[Any, ...], options: dict[str, Any]) -> Outcome:
    app = TaskQ("t", broker="memory://", **conf)
    dest = Router(app.conf).destination(name, args, {}, options)
    priority = options.get("priority", dest.priority)
    return dest.exchange, dest.routing_key, dest.queue.name if dest.queue else None, priority


@pytest.mark.parametrize("config", sorted(CONFIGS))
def test_the_same_destination_as_celery(config: str, celery_publishes: list[Outcome]) -> None:
    # Given one configuration on both sides, when each call is routed,
    # then taskq publishes where Celery publishes (exchange, key, declared queue, priority).
    conf = CONFIGS[config]
    compared = 0
    for name, args, options in CALLS:
        try:
            expected = celery_outcome(celery_publishes, conf, name, args, dict(options))
        except Exception:  # a call Celery cannot route in this configuration (e.g. no key)
            with pytest.raises(ConfigurationError):
                taskq_outcome(conf, name, args, dict(options))
            continue
        assert taskq_outcome(conf, name, args, dict(options)) == expected, (config, name, options)
        compared += 1
    assert compared >= len(CALLS) - 2


def test_task_option_and_call_option_beat_the_route() -> None:
    app = TaskQ("t", broker="memory://", task_routes={"t.f": "routed"})

    @app.task(name="t.f", queue="own")
    def f() -> None: ...

    router = Router(app.conf)
    assert router.destination("t.f").routing_key == "routed"
    assert router.destination("t.f", options=f._default_options()).routing_key == "own"
    assert router.destination("t.f", options={**f._default_options(), "queue": "call"}).routing_key == "call"


def test_bad_routes_are_one_line() -> None:
    with pytest.raises(ConfigurationError, match="delivery_mode"):
        Router(TaskQ(broker="memory://", task_routes={"a": {"queue": "q", "delivery_mode": 2}}).conf).destination("a")
    with pytest.raises(ConfigurationError, match="cannot import router"):
        Router(TaskQ(broker="memory://", task_routes="no.such.module.router").conf)
    with pytest.raises(ConfigurationError, match="exchange type"):
        Router(TaskQ(broker="memory://", task_default_exchange_type="bogus").conf)
    with pytest.raises(ConfigurationError, match="missing from task_queues"):
        Router(TaskQ(broker="memory://", task_create_missing_queues=False, task_queues=[Queue("a")]).conf).destination(
            "x", options={"queue": "b"}
        )


def test_router_by_dotted_name_is_imported_and_classes_instantiated() -> None:
    router = Router(TaskQ(broker="memory://", task_routes=[f"{__name__}.LegacyRouter"]).conf)
    assert router.destination("old.style").routing_key == "legacy"


@pytest.mark.parametrize(
    ("pattern", "key", "expected"),
    [
        ("a.*", "a.b", True),
        ("a.*", "a.b.c", False),
        ("a.*", "a", False),
        ("a.#", "a", True),
        ("a.#", "a.b.c", True),
        ("#", "", True),
        ("#.c", "a.b.c", True),
        ("*.b.#", "a.b", True),
        ("a.b", "a.b", True),
        ("a.b", "a.c", False),
    ],
)
def test_topic_matching_as_amqp(pattern: str, key: str, expected: bool) -> None:
    assert topic_matches(pattern, key) is expected


def test_queues_for_exchanges_without_a_broker_that_has_them() -> None:
    topology = Topology(TaskQ(broker="memory://", task_queues=QUEUES).conf)
    assert topology.queues_for("events", "audit.login") == ["audit", "everything"]
    assert topology.queues_for("events", "billing.paid") == ["everything"]
    assert topology.queues_for("broadcast", "whatever") == ["fan-a", "fan-b"]
    assert topology.queues_for("media", "media.video") == ["video"]
    assert topology.queues_for("media", "media.audio") == []


def test_extra_bindings_of_a_queue() -> None:
    q = Queue("multi", [binding(TOPIC, routing_key="a.#"), binding(FANOUT)])
    topology = Topology(TaskQ(broker="memory://", task_queues=[q]).conf)
    assert topology.queues_for("events", "a.x") == ["multi"]
    assert topology.queues_for("broadcast", "") == ["multi"]


def test_a_worker_without_queues_consumes_every_configured_queue() -> None:
    from taskq.cli.common import split_queues

    assert split_queues(None, TaskQ(broker="memory://")) == ["celery"]
    assert split_queues("", TaskQ(broker="memory://", task_queues=QUEUES)) == [q.name for q in QUEUES]
    assert split_queues("a, b", TaskQ(broker="memory://", task_queues=QUEUES)) == ["a", "b"]


def test_broadcast_queues_are_refused_by_name() -> None:
    from kombu.common import Broadcast

    with pytest.raises(ConfigurationError, match="Broadcast queue 'bc'"):
        Router(TaskQ(broker="memory://", task_queues=[Broadcast("bc")]).conf)


def test_eager_calls_run_once_whatever_the_route_reaches() -> None:
    app = TaskQ("t", broker="memory://", task_queues=QUEUES, task_always_eager=True)
    app.conf.task_routes = {"t.f": {"queue": "fan-a"}}
    runs: list[int] = []

    @app.task(name="t.f")
    def f(x: int) -> int:
        runs.append(x)
        return x

    assert f.delay(3).get() == 3
    assert runs == [3]


@pytest.mark.filterwarnings("ignore::celery.exceptions.CDeprecationWarning")  # Celery 6 drops task-attribute routing
def test_send_task_by_name_takes_the_registered_tasks_options_as_celery() -> None:
    ours = TaskQ("t", broker="memory://")
    theirs = Celery("t", broker="memory://", set_as_current=False)
    for app in (ours, theirs):

        @app.task(name="t.video", queue="video", routing_key="media.video")
        def video() -> None: ...

    assert ours.send_task("t.video").id
    assert ours.broker.queue_length("video") == 1
    sent = ours.send_task("t.video", queue="other")
    assert ours.broker.queue_length("other") == 1 and sent.id
    seen: list[str] = []

    def capture(routing_key: Any = None, **_: Any) -> None:
        seen.append(routing_key)

    theirs.finalize()  # Celery's registry holds decorated tasks once finalized
    before_task_publish.connect(capture)
    try:
        theirs.send_task("t.video")
    finally:
        before_task_publish.disconnect(capture)
    assert seen == ["video"]


def test_signatures_and_beat_entries_go_to_the_tasks_own_queue() -> None:
    from datetime import datetime, timezone

    from taskq.beat.core.beat_schedule import entries_from_app
    from taskq.beat.core.submit import AppSubmitter

    app = TaskQ("t", broker="memory://")

    @app.task(name="t.slow", queue="slow")
    def slow(x: int) -> int:
        return x

    slow.s(1).delay()
    assert app.broker.queue_length("slow") == 1
    app.conf.beat_schedule = {"tick": {"task": "t.slow", "schedule": 10, "args": (2,)}}
    (entry,) = [e for e in entries_from_app(app) if e.id == "tick"]
    (pub,) = AppSubmitter(app).publications(entry, datetime.now(timezone.utc))
    assert pub.queue == "slow"
