"""The dashboard's model and buttons on every broker: a real worker (-E) on SQLite, Redis,
PostgreSQL and RabbitMQ, and the dashboard's feed (events + poller) and actions in this
process, as ``taskq dashboard`` runs them (the HTTP side is the same on every broker: see
test_dashboard_browser.py)."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from taskq import TaskQ, states
from taskq.dashboard.actions import Actions
from taskq.dashboard.feed import Feed
from taskq.dashboard.state import FleetState
from tests.integration.conftest import BROKER_ENVS, activate
from tests.integration.workers import WorkerFactory, wait_until

pytestmark = pytest.mark.slow
WAIT = 40.0


@pytest.fixture(params=[*sorted(BROKER_ENVS), "rabbitmq"])
def broker_env(
    request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[dict[str, str]]:
    yield from activate(request.param, tmp_path, monkeypatch)


@pytest.fixture
def fleet(broker_env: dict[str, str]) -> Iterator[tuple[TaskQ, FleetState]]:
    app = TaskQ("dashboard", broker=os.environ["TASKQ_BROKER_URL"])
    state = FleetState()
    feed = Feed(app, state, refresh=0.3)
    feed.start()
    try:
        yield app, state
    finally:
        feed.stop()
        app.close()


def test_the_dashboard_sees_and_steers_a_worker(workers: WorkerFactory, fleet: tuple[TaskQ, FleetState]) -> None:
    app, state = fleet
    node = f"dash-{uuid.uuid4().hex[:8]}@testhost"
    workers.start("-E", "-c", "2", "-n", node)
    actions = Actions(app, state)
    key = uuid.uuid4().hex

    # the poller: queue depth and dead letters through the broker's admin calls, on every broker
    app.send_task("example_tasks.no_such_task", task_id=f"poison-{key}")
    letter = wait_until(lambda: [d for d in state.dead_letters() if d.task_id == f"poison-{key}"], WAIT,
                        "the dead letter listed")[0]
    assert "unknown task" in letter.reason and letter.task_name == "example_tasks.no_such_task"
    wait_until(lambda: any(q.name == "celery" and q.dead for q in state.queues()), WAIT, "the queue's dead letters")
    assert actions.run("requeue", {"queue": letter.queue, "letter_id": letter.id}) == "requeued 1 dead letter(s)"
    wait_until(lambda: state.beat() is not None, WAIT, "the schedule store read")
    assert state.problems == {}

    # revoke, from the dashboard, of a task not run yet (on every broker: revocations are stored)
    later = app.send_task("example_tasks.add", (1, 1), countdown=3)
    assert actions.run("revoke", {"task_id": later.id}) == f"revoked {later.id}"
    assert state.task(later.id).state == states.REVOKED  # type: ignore[union-attr]
    assert later.state == states.REVOKED

    # events: the worker with its pool, tasks that succeed and fail, a long one revoked running
    wait_until(lambda: any(w.hostname == node and w.pool for w in state.workers()), WAIT, "the worker's heartbeat")
    (seen,) = [w for w in state.workers() if w.hostname == node]
    assert seen.online(state.clock()) and seen.pool == "prefork" and seen.concurrency == 2
    ok = app.send_task("example_tasks.add", (2, 3))
    bad = app.send_task("example_tasks.fail", ("<b>x</b>",))
    long = app.send_task("example_tasks.slow_add", (1, 1, key, 120))
    wait_until(lambda: (t := state.task(ok.id)) is not None and t.state == states.SUCCESS, WAIT, "success")
    wait_until(lambda: (t := state.task(bad.id)) is not None and t.state == states.FAILURE, WAIT, "failure")
    failed = state.task(bad.id)
    assert failed is not None and "ValueError" in (failed.traceback or "") and failed.queue == "celery"
    wait_until(lambda: (t := state.task(long.id)) is not None and t.state == states.STARTED, WAIT, "started")
    assert actions.run("revoke", {"task_id": long.id}) == f"revoked {long.id}"
    assert state.task(long.id).state == states.REVOKED  # type: ignore[union-attr]
    wait_until(lambda: long.state == states.REVOKED, WAIT, "the backend's REVOKED")

    # retry of the failed task: sent again by name with its arguments, and run (and failing) again
    message = actions.run("retry", {"task_id": bad.id})
    copy_id = message.rsplit(" ", 1)[1]
    wait_until(lambda: (t := state.task(copy_id)) is not None and t.state == states.FAILURE, WAIT, "the copy run")
    assert state.task(copy_id).args == failed.args  # type: ignore[union-attr]
