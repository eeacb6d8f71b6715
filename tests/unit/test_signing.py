"""Signed messages through a real consumer: every field is covered, copies run once, old
messages are refused, and unsigned operation is untouched."""

from __future__ import annotations

import json
import time
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest

from taskq import TaskQ
from taskq.envelope import Envelope
from taskq.errors import ConfigurationError
from taskq.signing import SIGNATURE_HEADER, SIGNED_AT_HEADER, Signer, signer_for
from tests.unit.conftest import inline_worker

KEY = "unit-signing-key"


def wait_for(predicate: Any, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.02)


@pytest.fixture
def signed(app: TaskQ) -> tuple[TaskQ, list[dict[str, Any]]]:
    """The app with a signing key and a task that records what it saw."""
    app.conf.signing_key = KEY
    seen: list[dict[str, Any]] = []

    @app.task(bind=True, name="t.record")
    def record(self: Any, *args: Any, **kwargs: Any) -> str:
        seen.append({"args": args, "kwargs": kwargs, "headers": dict(self.request.headers)})
        return "ran"

    return app, seen


def publication(app: TaskQ, **options: Any) -> Envelope:
    pub = app.build_publication("t.record", (1,), {"k": "v"}, headers={"tenant": "acme"}, **options)
    return pub.envelope


def copy(envelope: Envelope) -> Envelope:
    return Envelope(
        json.loads(json.dumps(envelope.headers)), envelope.body, envelope.content_type, envelope.content_encoding,
        dict(envelope.properties),
    )


def changed(value: Any) -> Any:
    if value is None:
        return "forged"
    if isinstance(value, bool):
        return not value
    if isinstance(value, int):
        return value + 1
    if isinstance(value, list):
        return [*value, 1]
    return str(value) + "x"


# Every header a signed call carries; test_every_header_is_in_the_tamper_list keeps it complete.
HEADERS = [
    "lang", "task", "id", "shadow", "eta", "expires", "group", "group_index", "retries", "timelimit", "root_id",
    "parent_id", "argsrepr", "kwargsrepr", "origin", "ignore_result", "tenant", SIGNED_AT_HEADER,
]


def tampered_header(name: str) -> Any:
    def tamper(env: Envelope) -> None:
        env.headers[name] = changed(env.headers.get(name))

    return tamper


def set_property(name: str, value: Any) -> Any:
    def tamper(env: Envelope) -> None:
        env.properties[name] = value

    return tamper


TAMPERS = {
    **{f"header-{name}": tampered_header(name) for name in HEADERS},
    "header-added": lambda env: env.headers.__setitem__("x-admin", True),
    "header-removed": lambda env: env.headers.pop("tenant"),
    "priority": set_property("priority", 9),
    "content_type": lambda env: setattr(env, "content_type", "application/x-msgpack"),
    "content_encoding": lambda env: setattr(env, "content_encoding", "binary"),
    "body": lambda env: setattr(env, "body", env.body.replace(b"[1]", b"[2]")),
    "signature": lambda env: env.headers.__setitem__(SIGNATURE_HEADER, "0" * 64),
    "unsigned": lambda env: env.headers.pop(SIGNATURE_HEADER),
}


def test_every_header_is_in_the_tamper_list(signed: tuple[TaskQ, list[dict[str, Any]]]) -> None:
    app, _ = signed
    assert set(publication(app).headers) - {SIGNATURE_HEADER} == set(HEADERS)


@pytest.mark.parametrize("field", sorted(TAMPERS))
def test_a_tampered_field_is_dead_lettered_as_bad_signature(
    signed: tuple[TaskQ, list[dict[str, Any]]], field: str
) -> None:
    app, seen = signed
    forged = copy(publication(app))
    TAMPERS[field](forged)
    app.broker.publish("celery", forged)
    with inline_worker(app):
        wait_for(lambda: app.broker.dead_letters())
    [dead] = app.broker.dead_letters()
    assert "bad signature" in dead.reason
    assert seen == []


def test_a_message_moved_to_another_queue_is_dead_lettered(signed: tuple[TaskQ, list[dict[str, Any]]]) -> None:
    app, seen = signed
    envelope = publication(app, queue="celery")
    app.broker.publish("other", copy(envelope))
    with inline_worker(app, queues=("celery", "other")):
        wait_for(lambda: app.broker.dead_letters())
    assert "bad signature" in app.broker.dead_letters()[0].reason and seen == []


def test_the_task_sees_the_signed_custom_header(signed: tuple[TaskQ, list[dict[str, Any]]]) -> None:
    app, seen = signed
    result = app.send_task("t.record", (1,), {"k": "v"}, headers={"tenant": "acme"})
    with inline_worker(app):
        assert result.get(timeout=10) == "ran"
    assert seen[0]["headers"]["tenant"] == "acme" and seen[0]["args"] == (1,)


def test_an_exact_copy_runs_once_on_the_same_queue_and_never_on_another(
    signed: tuple[TaskQ, list[dict[str, Any]]],
) -> None:
    app, seen = signed
    envelope = publication(app)
    # Given the signed message, and two exact copies: one on its queue, one on another
    for queue in ("celery", "celery", "other"):
        app.broker.publish(queue, copy(envelope))
    # When a worker consumes both queues
    with inline_worker(app, queues=("celery", "other")):
        wait_for(lambda: len(app.broker.dead_letters()) == 2)
        assert app.AsyncResult(envelope.id).get(timeout=10) == "ran"
    # Then it ran once; the same-queue copy is a replay, the other queue's a bad signature
    assert len(seen) == 1
    reasons = sorted(d.reason for d in app.broker.dead_letters())
    assert reasons[0].startswith("bad signature") and reasons[1].startswith("replayed")


def test_a_copy_sent_after_the_first_ran_is_refused(signed: tuple[TaskQ, list[dict[str, Any]]]) -> None:
    app, seen = signed
    envelope = publication(app)
    app.broker.publish("celery", copy(envelope))
    with inline_worker(app):
        assert app.AsyncResult(envelope.id).get(timeout=10) == "ran"
        app.broker.publish("celery", copy(envelope))
        wait_for(lambda: app.broker.dead_letters())
    assert len(seen) == 1 and "replayed" in app.broker.dead_letters()[0].reason


def test_a_retry_is_a_new_signed_message_not_a_replay(app: TaskQ) -> None:
    app.conf.signing_key = KEY
    attempts: list[int] = []

    @app.task(bind=True, name="t.flaky", default_retry_delay=0)
    def flaky(self: Any) -> str:
        attempts.append(self.request.retries)
        if len(attempts) < 3:
            raise self.retry(countdown=0)
        return "done"

    with inline_worker(app):
        assert flaky.delay().get(timeout=10) == "done"
    assert attempts == [0, 1, 2] and app.broker.dead_letters() == []


def test_a_message_older_than_signing_max_age_is_dead_lettered(signed: tuple[TaskQ, list[dict[str, Any]]]) -> None:
    app, seen = signed
    app.conf.signing_max_age = 60.0
    old = publication(app)
    Signer(KEY, 60.0).sign("celery", old, now=datetime.now(timezone.utc) - timedelta(seconds=61))
    app.broker.publish("celery", old)
    with inline_worker(app):
        wait_for(lambda: app.broker.dead_letters())
    reason = app.broker.dead_letters()[0].reason
    assert reason.startswith("signature expired") and "signing_max_age=60s" in reason and seen == []


def test_the_window_opens_at_the_eta_when_that_is_later(signed: tuple[TaskQ, list[dict[str, Any]]]) -> None:
    # A countdown longer than signing_max_age: signed 90 s ago for an eta 30 s ago, window 60 s.
    app, seen = signed
    app.conf.signing_max_age = 60.0
    now = datetime.now(timezone.utc)
    late = publication(app, eta=now - timedelta(seconds=30))
    Signer(KEY, 60.0).sign("celery", late, now=now - timedelta(seconds=90))
    app.broker.publish("celery", late)
    with inline_worker(app):
        assert app.AsyncResult(late.id).get(timeout=10) == "ran"
    assert len(seen) == 1


def test_a_timestamp_far_in_the_future_is_refused(signed: tuple[TaskQ, list[dict[str, Any]]]) -> None:
    app, seen = signed
    app.conf.signing_max_age = 60.0
    future = publication(app)
    Signer(KEY, 60.0).sign("celery", future, now=datetime.now(timezone.utc) + timedelta(seconds=120))
    app.broker.publish("celery", future)
    with inline_worker(app):
        wait_for(lambda: app.broker.dead_letters())
    assert "signed in the future" in app.broker.dead_letters()[0].reason and seen == []


def test_a_redelivery_after_a_lost_worker_is_not_a_replay(signed: tuple[TaskQ, list[dict[str, Any]]]) -> None:
    app, seen = signed
    result = app.send_task("t.record", (1,), {})
    # Given a worker that started the message (and remembered it), then died holding it
    [held] = app.broker.fetch(["celery"], 1, timeout=5)
    from taskq.worker.runner import TaskRunner

    dead_runner = TaskRunner(app, app.broker)
    assert held.envelope is not None
    assert not dead_runner._replayed(held, _parse(app, held.envelope))
    # When its claim expires, the broker delivers it again, counted
    with inline_worker(app):
        assert result.get(timeout=10) == "ran"
    assert len(seen) == 1 and app.broker.dead_letters() == []


def test_a_running_task_handed_back_uncounted_is_not_a_replay(signed: tuple[TaskQ, list[dict[str, Any]]]) -> None:
    # A cold shutdown requeues its running task without counting: release() clears the mark.
    app, seen = signed
    result = app.send_task("t.record", (1,), {})
    from taskq.worker.runner import TaskRunner

    runner = TaskRunner(app, app.broker)
    [held] = app.broker.fetch(["celery"], 1, timeout=5)
    assert held.envelope is not None
    assert not runner._replayed(held, _parse(app, held.envelope))
    runner.release(held)
    app.broker.requeue([held])
    with inline_worker(app):
        assert result.get(timeout=10) == "ran"
    assert len(seen) == 1 and app.broker.dead_letters() == []


def _parse(app: TaskQ, envelope: Envelope) -> Any:
    from taskq.message import parse

    return parse(envelope, app.accepted, signer_for(app.conf), "celery")


def test_unsigned_operation_is_unchanged(app: TaskQ) -> None:
    # No signing_key: no signature, no timestamp, the template encoding (Celery's bytes).
    envelope = app.build_publication("t.record", (1,), {}).envelope
    assert SIGNATURE_HEADER not in envelope.headers and SIGNED_AT_HEADER not in envelope.headers
    assert envelope.plain is not None


def test_settings_that_cannot_be_honoured_are_refused(app: TaskQ) -> None:
    app.conf.result_serializer = "msgpack"
    with pytest.raises(ConfigurationError, match="result_serializer 'msgpack' is not supported"):
        app.check()
    app.conf.result_serializer = "json"
    app.conf.signing_key, app.conf.signing_max_age = KEY, 0
    with pytest.raises(ConfigurationError, match="signing_max_age"):
        app.check()


def test_hostile_headers_are_a_bad_signature_not_a_crash(signed: tuple[TaskQ, list[dict[str, Any]]]) -> None:
    from taskq.errors import SignatureError

    app, _ = signed
    signer = signer_for(app.conf)
    assert signer is not None
    deep: Any = "x"
    for _ in range(5000):
        deep = [deep]
    for tamper in (
        lambda env: env.headers.__setitem__("tenant", deep),
        lambda env: env.properties.__setitem__("priority", "high"),
    ):
        forged = publication(app)
        tamper(forged)
        with pytest.raises(SignatureError, match="bad signature"):
            signer.verify("celery", forged)


def test_header_keys_that_are_not_strings_can_be_signed(signed: tuple[TaskQ, list[dict[str, Any]]]) -> None:
    app, _ = signed
    envelope = app.build_publication("t.record", (), {}, headers={1: "one", "two": {3: "three"}}).envelope
    signer = signer_for(app.conf)
    assert signer is not None
    signer.verify("celery", copy(envelope))  # the copy has the keys as JSON strings, as a broker returns them
