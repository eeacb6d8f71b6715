"""The dashboard's state model, markup escaping and actions, without a server."""

from __future__ import annotations

import asyncio
import json
import uuid
from typing import Any

import pytest

from taskq import TaskQ
from taskq.dashboard import views
from taskq.dashboard.actions import ActionError, Actions, _literal
from taskq.dashboard.markup import Safe, esc, render, sparkline
from taskq.dashboard.routes import fragment_events
from taskq.dashboard.security import bind_problem, is_loopback
from taskq.dashboard.state import FleetState, TaskFilter


class Clock:
    def __init__(self, now: float = 1_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def task_event(kind: str, task_id: str, at: float, **fields: Any) -> dict[str, Any]:
    return {"type": kind, "uuid": task_id, "timestamp": at, "hostname": "w1@host", **fields}


def test_task_events_move_a_task_through_its_states_and_a_late_event_does_not_undo_them() -> None:
    clock = Clock()
    state = FleetState(clock=clock)
    finished: list[str] = []
    state.on_finished(lambda t: finished.append(t.state))
    state.apply(task_event("task-received", "t1", 10.0, name="m.add", args="(1, 2)", kwargs="{}", queue="q1"))
    state.apply(task_event("task-succeeded", "t1", 12.0, result="3", runtime=0.5))
    state.apply(task_event("task-started", "t1", 11.0))  # arrives last, happened before success
    task = state.task("t1")
    assert task is not None
    assert (task.state, task.name, task.queue, task.result, task.runtime) == ("SUCCESS", "m.add", "q1", "3", 0.5)
    assert [what for _, what, _ in task.timeline] == ["task-received", "task-started", "task-succeeded"]
    assert finished == ["SUCCESS"]


def test_filters_select_by_state_name_queue_and_worker() -> None:
    state = FleetState(clock=Clock())
    state.apply(task_event("task-received", "a", 1.0, name="m.add", queue="fast"))
    state.apply(task_event("task-failed", "b", 2.0, name="m.boom", queue="slow", exception="E()"))
    assert [t.id for t in state.tasks(TaskFilter(state="FAILURE"))] == ["b"]
    assert [t.id for t in state.tasks(TaskFilter(name="ADD"))] == ["a"]
    assert [t.id for t in state.tasks(TaskFilter(queue="slow"))] == ["b"]
    assert [t.id for t in state.tasks(TaskFilter(worker="nobody"))] == []
    assert [t.id for t in state.tasks()] == ["b", "a"]  # newest first


def test_workers_go_offline_after_two_missed_heartbeats_or_when_they_say_so() -> None:
    clock = Clock()
    state = FleetState(clock=clock)
    state.apply({"type": "worker-heartbeat", "hostname": "w1@h", "freq": 2.0, "active": 1, "processed": 5,
                 "loadavg": [0.5, 0.2, 0.1], "pool": "prefork", "concurrency": 4})
    (worker,) = state.workers()
    assert worker.online(clock.now + 3.9) and not worker.online(clock.now + 4.1)
    assert (worker.pool, worker.concurrency, worker.active, worker.processed) == ("prefork", 4, 1, 5)
    state.apply({"type": "worker-offline", "hostname": "w1@h", "freq": 2.0})
    assert not state.workers()[0].online(clock.now)


def test_queue_rows_count_in_flight_and_rates_per_second() -> None:
    clock = Clock(100.5)
    state = FleetState(clock=clock)
    state.set_queues({"q": (7, 2)})
    state.apply(task_event("task-received", "a", 100.1, queue="q"))
    state.apply(task_event("task-received", "b", 100.2, queue="q"))
    state.apply(task_event("task-succeeded", "b", 100.3))
    (row,) = state.queues()
    assert (row.name, row.depth, row.dead, row.in_flight) == ("q", 7, 2, 1)
    assert row.rate_in[-1] == 2 and row.rate_out[-1] == 1 and len(row.rate_in) == 60


def test_every_shown_value_is_escaped() -> None:
    state = FleetState(clock=Clock())
    evil = "<script>alert(1)</script>"
    state.apply(task_event("task-failed", f'x"><img src=x onerror=alert(2)>{evil}', 1.0, name=evil,
                           args=f"({evil!r},)", exception=evil, traceback=evil, queue=evil))
    state.apply({"type": "worker-heartbeat", "hostname": evil, "freq": 2.0})
    page = views.main_page(state, TaskFilter(), "csrf")
    task_id = state.tasks()[0].id
    detail = views.detail_page(state, task_id, "csrf")
    for html in (page, detail):
        assert "<script>alert" not in html and "<img" not in html
        assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html


def test_render_escapes_values_but_not_safe_markup() -> None:
    assert render("<b>{v}</b>", v="<i>&'\"") == "<b>&lt;i&gt;&amp;&#x27;&quot;</b>"
    assert render("<b>{v}</b>", v=render("<i>{x}</i>", x="<")) == "<b><i>&lt;</i></b>"
    assert esc(Safe("<br>")) == "<br>"
    assert "<polyline" in sparkline([[0, 1, 5], [1, 0, 0]])


def test_bind_rules() -> None:
    assert is_loopback("127.0.0.1") and is_loopback("::1") and is_loopback("localhost")
    assert not is_loopback("0.0.0.0") and not is_loopback("192.168.1.5")
    assert bind_problem("127.0.0.1", None, None) is None
    assert "--auth user:password or --token" in (bind_problem("0.0.0.0", None, None) or "")
    assert bind_problem("0.0.0.0", "admin:secret", None) is None
    assert bind_problem("0.0.0.0", None, "a-long-token") is None
    assert bind_problem("127.0.0.1", "admin", None) is not None  # no password
    assert bind_problem("0.0.0.0", None, "short") is not None


def test_the_stream_sends_changed_fragments_only() -> None:
    state = FleetState(clock=Clock())
    fragments = views.main_fragments(state, TaskFilter(), "csrf")

    async def take() -> tuple[list[str], list[str]]:
        stream = fragment_events(state, fragments, interval=0.01)
        first = [await stream.__anext__() for _ in fragments]  # every fragment once
        state.apply(task_event("task-received", "t9", 5.0, name="m.add", queue="celery"))
        second = [await stream.__anext__() for _ in range(3)]
        await stream.aclose()
        return first, second

    first, second = asyncio.run(take())
    assert [json.loads(e.split("data: ", 1)[1])["id"] for e in first] == list(fragments)
    changed = {json.loads(e.split("data: ", 1)[1])["id"] for e in second}
    # the new task, its queue, and the note "no task events yet" that goes away; not the rest
    assert changed == {"tasks", "queues", "problems"}


def test_literal_arguments_read_back_only_when_plain() -> None:
    assert _literal("(1, 'a', [2])", tuple) == (1, "a", [2])
    assert _literal("[1]", tuple) == (1,)
    assert _literal("{'k': None}", dict) == {"k": None}
    assert _literal("(<object at 0x1>,)", tuple) is None
    assert _literal("(1, 2, 3...", tuple) is None
    assert _literal("", dict) == {}


@pytest.fixture
def memory_app() -> TaskQ:
    name = uuid.uuid4().hex
    return TaskQ("dash", broker=f"memory://{name}", backend=f"memory://{name}")


def test_retry_sends_a_failed_task_again_with_its_arguments(memory_app: TaskQ) -> None:
    state = FleetState()
    state.apply(task_event("task-received", "f1", 1.0, name="m.boom", args="(1, 'x')", kwargs="{'k': 2}",
                           queue="work"))
    state.apply(task_event("task-failed", "f1", 2.0, exception="ValueError()"))
    message = Actions(memory_app, state).run("retry", {"task_id": "f1"})
    (letter,) = memory_app.broker.fetch(["work"], 1, 1.0)
    assert letter.envelope is not None and letter.envelope.headers["task"] == "m.boom"
    assert json.loads(letter.envelope.body)[:2] == [[1, "x"], {"k": 2}]
    assert state.task("f1").retried_as == letter.envelope.id  # type: ignore[union-attr]
    assert letter.envelope.id in message


def test_actions_refuse_what_they_cannot_do(memory_app: TaskQ) -> None:
    state = FleetState()
    actions = Actions(memory_app, state)
    state.apply(task_event("task-succeeded", "s1", 1.0, name="m.add"))
    with pytest.raises(ActionError, match="only a failed task"):
        actions.run("retry", {"task_id": "s1"})
    with pytest.raises(ActionError, match="missing task_id"):
        actions.run("revoke", {})
    with pytest.raises(ActionError, match="no action"):
        actions.run("shutdown", {})
    with pytest.raises(ActionError, match="is gone"):
        actions.run("requeue", {"queue": "celery", "letter_id": "nope"})


def test_requeue_and_purge_move_dead_letters_through_the_broker(memory_app: TaskQ) -> None:
    from taskq.dashboard.feed import dead_letter_row

    state = FleetState()
    actions = Actions(memory_app, state)
    for n in range(3):
        memory_app.send_task("m.add", (n, n), queue="work")
    for delivery in memory_app.broker.fetch(["work"], 3, 1.0):
        memory_app.broker.dead_letter(delivery, "test")
    letters = memory_app.broker.dead_letters("work")
    rows = [dead_letter_row(d) for d in letters]
    assert {r.task_name for r in rows} == {"m.add"} and all(r.task_id and r.args for r in rows)
    assert actions.run("requeue", {"queue": "work", "letter_id": letters[0].id}) == "requeued 1 dead letter(s)"
    assert memory_app.broker.dead_letter_count("work") == 2
    assert actions.run("purge-dead-letters", {"queue": "work"}) == "purged 2 dead letter(s)"
    assert memory_app.broker.dead_letter_count("work") == 0
    (back,) = memory_app.broker.fetch(["work"], 5, 1.0)
    assert back.envelope is not None and back.envelope.id == rows[0].task_id


def test_the_poller_lists_dead_letters_only_when_their_counts_change(
    memory_app: TaskQ, monkeypatch: pytest.MonkeyPatch
) -> None:
    from taskq.dashboard.feed import Feed

    memory_app.conf.beat_store_url = f"memory://{uuid.uuid4().hex}"
    state, listed = FleetState(), []
    feed = Feed(memory_app, state)
    original = memory_app.broker.dead_letters
    monkeypatch.setattr(memory_app.broker, "dead_letters", lambda *a: listed.append(a) or original(*a))
    feed.poll_once()
    feed.poll_once()
    assert len(listed) == 1 and state.dead_letters() == [] and state.beat() == []
    memory_app.send_task("m.add", (1, 1))
    (delivery,) = memory_app.broker.fetch(["celery"], 1, 1.0)
    memory_app.broker.dead_letter(delivery, "poison")
    feed.poll_once()
    assert len(listed) == 2 and [d.reason for d in state.dead_letters()] == ["poison"]
    assert [(q.name, q.depth, q.dead) for q in state.queues()] == [("celery", 0, 1)]
    assert state.problems == {}
