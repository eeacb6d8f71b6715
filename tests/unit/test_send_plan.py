"""The producer's shortcuts give what the long way gives: the send plan kept per task name
(app._send_plan) is never stale (a setting assigned later, a time option, a per-call object),
the body's short form is the same bytes as the full encoding, and argsrepr/kwargsrepr are
reprlib's."""

from __future__ import annotations

import json
import time
import uuid
from datetime import datetime
from typing import Any

import pytest

from taskq import Queue, TaskQ, message
from taskq.bigjson import BIG
from taskq.envelope import Envelope
from taskq.serialization import EMPTY_EMBED, dumps_call, get_serializer
from taskq.signing import SIGNATURE_HEADER


def _app() -> TaskQ:
    return TaskQ("plan", broker=f"memory://{uuid.uuid4().hex}", task_default_queue="first")


def _sent(app: TaskQ, queue: str) -> list[Envelope]:
    deliveries = app.broker.fetch([queue], 100, 0.01)
    return [d.envelope for d in deliveries if d.envelope is not None]


def test_a_setting_assigned_after_a_send_applies_to_the_next_send() -> None:
    app = _app()

    @app.task(name="plan.noop")
    def noop() -> None: ...

    noop.delay()
    assert app.broker.queue_length("first") == 1
    app.conf.task_routes = {"plan.noop": {"queue": "moved"}}
    noop.delay()
    assert app.broker.queue_length("moved") == 1 and app.broker.queue_length("first") == 1
    app.config_from_object({"task_routes": {"plan.noop": {"queue": "again"}}})  # read at the next use of app.conf
    noop.delay()
    assert app.broker.queue_length("again") == 1
    assert SIGNATURE_HEADER not in _sent(app, "again")[0].headers
    app.conf.signing_key = "plan-key"
    noop.delay()
    assert SIGNATURE_HEADER in _sent(app, "again")[0].headers


def test_the_plan_is_kept_for_constant_options_only() -> None:
    app = _app()
    assert app._send_plan("plan.x", {}) is app._send_plan("plan.x", {})
    constant = {"queue": "q", "priority": 3, "time_limit": 2.5}
    assert app._send_plan("plan.x", constant) is app._send_plan("plan.x", dict(constant))
    assert app._send_plan("plan.x", {"queue": "q"}) is not app._send_plan("plan.x", {"queue": "other"})
    assert app._send_plan("plan.x", {"countdown": 5}) is not app._send_plan("plan.x", {"countdown": 5})
    queue = Queue("q")
    assert app._send_plan("plan.x", {"queue": queue}) is not app._send_plan("plan.x", {"queue": queue})
    kept = app._send_plan("plan.x", {})
    app.conf.task_default_queue = "second"
    assert app._send_plan("plan.x", {}) is not kept
    assert app._send_plan("plan.x", {}).targets == (("second", "", ""),)


def test_a_kept_plan_does_not_hold_the_callers_dict() -> None:
    app = _app()
    options: dict[str, Any] = {"queue": "q"}
    plan = app._send_plan("plan.x", options)
    options["queue"] = "changed"
    assert plan.options == {"queue": "q"}


def test_a_tasks_expires_is_counted_from_each_send() -> None:
    app = _app()

    @app.task(name="plan.expiring", expires=60)
    def expiring() -> None: ...

    expiring.delay()
    time.sleep(0.01)
    expiring.delay()
    first, second = (datetime.fromisoformat(e.headers["expires"]) for e in _sent(app, "first"))
    assert second > first


def test_a_priority_refused_is_refused_on_every_send() -> None:
    app = _app()
    for _ in range(2):
        with pytest.raises(Exception, match="priority"):
            app.send_task("plan.x", priority=12)


def test_settings_count_their_assignments() -> None:
    app = _app()
    before = app.conf.changes
    app.conf.task_default_queue = "other"
    app.conf.update(task_serializer="json")
    assert app.conf.changes == before + 2


@pytest.mark.parametrize(
    ("args", "kwargs"),
    [
        ([], {}),
        ([1, "two", 3.5, None, True], {"k": [1, {"a": "b"}]}),
        (['é ☃ \u2028 "quoted" \n'], {"unicode": "ü"}),
        (["x" * BIG], {}),
        ([], {"big": "y" * BIG}),
    ],
)
def test_the_short_body_is_the_full_encoding(args: list[Any], kwargs: dict[str, Any]) -> None:
    json_serializer = get_serializer("json")
    full = json_serializer.dumps([args, kwargs, EMPTY_EMBED])
    assert dumps_call(json_serializer, args, kwargs, None) == full
    assert dumps_call(json_serializer, args, kwargs, dict(EMPTY_EMBED)) == full
    assert json.loads(full) == [args, kwargs, EMPTY_EMBED]
    for name in ("msgpack", "pickle"):
        other = get_serializer(name)
        assert dumps_call(other, args, kwargs, None) == other.dumps([args, kwargs, EMPTY_EMBED])


REPR_ARGS: list[tuple[Any, ...]] = [
    (1,),
    (1, "two", 3.5, None, True, False),
    (1, 2, 3, 4, 5, 6, 7),  # beyond reprlib's maxtuple: "..."
    (10**40,),
    (10**39,),
    ("x" * 36,),
    ("x" * 37,),
    ("x" * 38,),  # the longest str whose repr may be short (40 with its quotes)
    ("x" * 39,),
    ("x" * BIG, 1),  # a big argument: reprlib shows its first and last characters
    ("é ☃ \n '\"",),
    (float("nan"), float("inf"), -0.0),
    ([1, 2],),
    ({"a": 1},),
    (b"bytes",),
    (object,),
]
REPR_KWARGS: list[dict[Any, Any]] = [
    {"b": 1, "a": "x"},
    {"d": 1, "c": 2, "b": 3, "a": 4},
    {"e": 1, "d": 1, "c": 2, "b": 3, "a": 4},  # beyond reprlib's maxdict: "..."
    {"k": "v" * 40},
    {"k": "v" * BIG},
    {"k": 10**45},
    {"k": [1]},
    {1: "int key"},
    {"k": None, "j": True, "i": 1.5},
]


@pytest.mark.parametrize("args", REPR_ARGS)
def test_args_repr_is_reprlibs(args: tuple[Any, ...]) -> None:
    assert message.args_repr(args) == message._repr.repr(args)


@pytest.mark.parametrize("kwargs", REPR_KWARGS)
def test_kwargs_repr_is_reprlibs(kwargs: dict[Any, Any]) -> None:
    assert message.kwargs_repr(kwargs) == message._repr.repr(kwargs)


def test_a_big_argument_is_never_given_whole_to_the_builtin_repr(monkeypatch: pytest.MonkeyPatch) -> None:
    # repr() escapes every character of a string: 100 KB of it cost 150-300 us of a delay(),
    # only for the text to be dropped for reprlib's
    lengths: list[int] = []

    def recording(value: Any) -> str:
        lengths.append(len(value))
        return repr(value)

    monkeypatch.setattr(message, "repr", recording, raising=False)
    big = "x" * BIG
    assert message.args_repr((big,)) == message._repr.repr((big,))
    assert message.kwargs_repr({"k": big}) == message._repr.repr({"k": big})
    assert message.args_repr(("short",)) == "('short',)"
    assert lengths == [1]  # only the short call's tuple reached the builtin repr
