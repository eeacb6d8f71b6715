"""How the rpc:// caller files the replies it reads (no server: the filing alone)."""

from __future__ import annotations

import json
from collections import OrderedDict

import pika

from taskq.backends.rpc import STATES_KEPT, _Link


def _reply(link: _Link, task_id: str, status: str, correlation: bool = True) -> None:
    body = json.dumps({"status": status, "result": None, "task_id": task_id}).encode()
    link.on_reply(None, None, pika.BasicProperties(correlation_id=task_id if correlation else None), body)


def _bare_link() -> _Link:
    link = _Link.__new__(_Link)  # the filing needs no connection
    link.states = OrderedDict()
    return link


def test_latest_state_wins_but_a_late_started_never_hides_the_outcome() -> None:
    link = _bare_link()
    _reply(link, "a", "STARTED")
    _reply(link, "a", "SUCCESS")
    _reply(link, "a", "STARTED")
    assert json.loads(link.states["a"])["status"] == "SUCCESS"
    _reply(link, "b", "RETRY", correlation=False)  # no correlation_id: the body's task_id
    assert json.loads(link.states["b"])["status"] == "RETRY"


def test_only_the_latest_tasks_are_kept() -> None:
    link = _bare_link()
    for i in range(STATES_KEPT + 5):
        _reply(link, str(i), "SUCCESS")
    assert len(link.states) == STATES_KEPT and "0" not in link.states and str(STATES_KEPT + 4) in link.states
