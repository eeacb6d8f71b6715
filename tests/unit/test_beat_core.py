"""The scheduling core with an injected clock: sleeps, misfire policy, coalesce,
max_instances, jitter, runtime changes, at-most-once claims, deposed leaders."""

from __future__ import annotations

import time
import uuid
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

from taskq.app import TaskQ
from taskq.beat.core import hook as ev
from taskq.beat.core.beat_schedule import entry_from_spec
from taskq.beat.core.entry import Entry, EntryState, Policy
from taskq.beat.core.errors import ConflictingIdError, JobLookupError
from taskq.beat.core.loop import SchedulerCore
from taskq.beat.core.schedule_api import ScheduleAPI
from taskq.beat.core.schedules import at, crontab, every
from taskq.beat.core.stores.base import ClaimResult, StoreError
from taskq.beat.core.stores.memory import MemoryScheduleStore
from taskq.beat.core.stores.sqlite import SQLiteScheduleStore
from taskq.beat.core.submit import INSTANT_HEADER, AppSubmitter
from taskq.errors import ConfigurationError

T0 = datetime(2026, 3, 2, 12, 0, 0, tzinfo=timezone.utc)


class Clock:
    def __init__(self, start: datetime = T0) -> None:
        self.now = start

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


class Recorder:
    def __init__(self) -> None:
        self.events: list[ev.BeatEvent] = []

    def __call__(self, event: ev.BeatEvent) -> None:
        self.events.append(event)

    def kinds(self, kind: str) -> list[ev.BeatEvent]:
        return [e for e in self.events if e.kind == kind]


def make_app(backend: bool = False, broker: str | None = None) -> TaskQ:
    name = uuid.uuid4().hex
    return TaskQ(
        "beat-tests",
        broker=broker or f"memory://{name}",
        backend=f"memory://{name}" if backend else "none",
        task_default_queue="q-" + name,
    )


def queued(app: TaskQ) -> list[dict[str, Any]]:
    """Drain the default queue; the headers of each message, oldest first."""
    deliveries = app.broker.fetch([app.conf.task_default_queue], 1000, 0)
    app.broker.ack(deliveries)
    return [d.envelope.headers for d in deliveries if d.envelope is not None]


def instants(app: TaskQ) -> list[str]:
    return [h[INSTANT_HEADER] for h in queued(app)]


def iso(seconds: float) -> str:
    return (T0 + timedelta(seconds=seconds)).isoformat()


def make_core(
    app: TaskQ, clock: Clock, *entries: Entry, store: Any = None, **kw: Any
) -> tuple[SchedulerCore, Recorder]:
    recorder = Recorder()
    core = SchedulerCore(
        store or MemoryScheduleStore(),
        AppSubmitter(app),
        clock=clock,
        sink=recorder,
        lock_ttl=kw.pop("lock_ttl", 600.0),
        config_entries=entries,
        **kw,
    )
    return core, recorder


def config_entry(entry_id: str = "tick", schedule: Any = None, **spec: Any) -> Entry:
    return entry_from_spec(
        entry_id, {"task": "t.tick", "schedule": schedule or every(seconds=10), **spec}, "UTC", has_backend=True
    )


def test_sleeps_exactly_until_the_next_instant_and_sends_each_once() -> None:
    # Given a 10-second entry first stored at T0
    app, clock = make_app(), Clock()
    core, recorder = make_core(app, clock, config_entry())
    # When beat starts, nothing is due yet and it sleeps the whole period
    assert core.tick() == pytest.approx(10.0)
    assert core.is_leader and instants(app) == []
    # Then each instant is sent once, at its time
    clock.advance(10)
    assert core.tick() == pytest.approx(10.0)
    assert instants(app) == [iso(10)]
    clock.advance(4.5)
    assert core.tick() == pytest.approx(5.5)
    assert instants(app) == []
    clock.advance(5.5)
    core.tick()
    assert instants(app) == [iso(20)]
    submitted = recorder.kinds(ev.SUBMITTED)
    assert [e.instants[0] for e in submitted] == [T0 + timedelta(seconds=10), T0 + timedelta(seconds=20)]
    assert submitted[0].detail["lateness"] == 0.0


def test_crontab_sleep_is_computed_not_polled() -> None:
    app, clock = make_app(), Clock(T0 + timedelta(seconds=30.5))
    core, _ = make_core(app, clock, config_entry("minutely", crontab(minute="*")))
    assert core.tick() == pytest.approx(29.5)


def test_missed_runs_coalesce_into_one_late_run_by_default() -> None:
    app, clock = make_app(), Clock()
    core, recorder = make_core(app, clock, config_entry())
    core.tick()
    clock.advance(35)  # instants 10, 20, 30 are due
    assert core.tick() == pytest.approx(5.0)
    assert instants(app) == [iso(30)]
    missed = recorder.kinds(ev.MISSED)
    assert len(missed) == 1 and missed[0].detail == {"count": 2, "reason": "coalesced"}
    assert missed[0].instants == (T0 + timedelta(seconds=10), T0 + timedelta(seconds=20))


def test_without_coalesce_every_missed_run_runs() -> None:
    app, clock = make_app(), Clock()
    core, recorder = make_core(app, clock, config_entry(coalesce=False))
    core.tick()
    clock.advance(35)
    core.tick()
    assert instants(app) == [iso(10), iso(20), iso(30)]
    assert recorder.kinds(ev.MISSED) == []


def test_misfire_grace_time_drops_runs_that_are_too_late() -> None:
    app, clock = make_app(), Clock()
    core, recorder = make_core(app, clock, config_entry(coalesce=False, misfire_grace_time=6))
    core.tick()
    clock.advance(35)  # lateness 25, 15, 5
    core.tick()
    assert instants(app) == [iso(30)]
    missed = recorder.kinds(ev.MISSED)
    assert missed[0].detail == {"count": 2, "reason": "misfire_grace_time"}


def test_all_runs_past_grace_still_move_the_state_on() -> None:
    app, clock = make_app(), Clock()
    core, _ = make_core(app, clock, config_entry(misfire_grace_time=1))
    core.tick()
    clock.advance(25.5)
    core.tick()
    assert instants(app) == []
    assert core.entries["tick"].state.next_run_time == T0 + timedelta(seconds=30)
    clock.advance(4.5)
    core.tick()
    assert instants(app) == [iso(30)]


def test_max_instances_skips_while_runs_are_unfinished() -> None:
    # Given an entry allowing one unfinished run, with a result backend
    app, clock = make_app(backend=True), Clock()
    core, recorder = make_core(app, clock, config_entry(max_instances=1))
    core.tick()
    clock.advance(10)
    core.tick()
    first = queued(app)
    assert len(first) == 1
    # When the next instant comes while the first run has no result yet: skipped
    clock.advance(10)
    core.tick()
    assert queued(app) == []
    skipped = recorder.kinds(ev.MAX_INSTANCES)
    assert len(skipped) == 1 and skipped[0].instants == (T0 + timedelta(seconds=20),)
    # Then once the first run finished, the next instant is sent
    assert app.backend is not None
    app.backend.store(first[0]["id"], "SUCCESS", 1)
    clock.advance(10)
    core.tick()
    assert [h[INSTANT_HEADER] for h in queued(app)] == [iso(30)]


def test_max_instances_needs_a_result_backend() -> None:
    with pytest.raises(ConfigurationError, match="max_instances needs a result backend"):
        entry_from_spec("x", {"task": "t", "schedule": 5, "max_instances": 1}, "UTC", has_backend=False)


def test_jitter_is_the_same_on_every_beat_and_delays_the_send() -> None:
    entry = config_entry(jitter=5.0)
    instant = T0 + timedelta(seconds=10)
    offset = entry.jitter_offset(instant)
    assert 0 <= offset < 5.0
    assert config_entry(jitter=5.0).jitter_offset(instant) == offset
    app, clock = make_app(), Clock()
    core, _ = make_core(app, clock, entry)
    assert core.tick() == pytest.approx(10 + offset)
    clock.advance(10)
    core.tick()
    assert instants(app) == ([] if offset > 0 else [instant.isoformat()])
    clock.advance(offset)
    core.tick()
    assert instants(app) == ([instant.isoformat()] if offset > 0 else [])


def test_task_id_is_a_function_of_entry_and_instant() -> None:
    app, clock = make_app(), Clock()
    core, _ = make_core(app, clock, config_entry())
    core.tick()
    clock.advance(10)
    core.tick()
    (headers,) = queued(app)
    assert headers["id"] == config_entry().task_id(T0 + timedelta(seconds=10))
    assert headers["taskq_beat_entry"] == "tick"


def test_runtime_changes_through_the_api_are_picked_up() -> None:
    # Given a running core with no entries
    app, clock = make_app(), Clock()
    store = MemoryScheduleStore()
    core, recorder = make_core(app, clock, store=store)
    api = ScheduleAPI(store, clock, on_change=core.wake)
    assert core.tick() == pytest.approx(200.0)  # only the lock renewal is ahead
    # When a job is added, it is loaded and its first instant scheduled
    api.add_job("t.added", every(seconds=3), id="added", args=[1])
    assert core.tick() == pytest.approx(3.0)
    assert [e.entry_id for e in recorder.kinds(ev.ENTRY_ADDED)] == ["added"]
    with pytest.raises(ConflictingIdError):
        api.add_job("t.added", every(seconds=3), id="added")
    # Then pause, resume, reschedule and remove take effect on the next pass
    api.pause_job("added")
    clock.advance(3)
    core.tick()
    assert instants(app) == []
    api.resume_job("added")
    assert core.tick() == pytest.approx(3.0)
    api.reschedule_job("added", every(seconds=7))
    assert core.tick() == pytest.approx(7.0)
    clock.advance(7)
    core.tick()
    assert instants(app) == [iso(10)]  # counted from the reschedule at T0+3
    api.modify_job("added", args=[2], misfire_grace_time=30)
    assert store.get("added").args == (2,)  # type: ignore[union-attr]
    api.remove_job("added")
    core.tick()
    assert [e.entry_id for e in recorder.kinds(ev.ENTRY_REMOVED)] == ["added"]
    with pytest.raises(JobLookupError):
        api.remove_job("added")


def test_add_job_uses_apscheduler_defaults_and_next_run_time_none_pauses() -> None:
    store, clock = MemoryScheduleStore(), Clock()
    api = ScheduleAPI(store, clock, has_backend=True)
    job = api.add_job("t.x", every(minutes=1), id="x")
    assert job.policy == Policy(misfire_grace_time=1.0, coalesce=True, max_instances=1)
    paused = api.add_job("t.y", every(minutes=1), id="y", next_run_time=None)
    assert paused.paused
    no_backend = ScheduleAPI(MemoryScheduleStore(), clock)
    assert no_backend.add_job("t.z", every(minutes=1)).policy.max_instances is None
    with pytest.raises(ConfigurationError):
        no_backend.add_job("t.z", every(minutes=1), max_instances=2)


def test_each_instant_is_claimed_once_even_when_two_cores_believe_they_lead(tmp_path: Path) -> None:
    # Given two cores on one store; A leads and sends the instant
    app, clock = make_app(), Clock()
    store = SQLiteScheduleStore(f"sqlite:///{tmp_path / 'beat.db'}")
    a, _ = make_core(app, clock, config_entry(), store=store, lock_ttl=600.0)
    b, _ = make_core(app, clock, config_entry(), store=store, lock_ttl=600.0)
    a.tick()
    b.tick()
    assert a.is_leader and not b.is_leader
    clock.advance(10)
    a.tick()
    assert instants(app) == [iso(10)]
    # When A's lock passes to B while B still holds the state from before A's claim
    store.release_lock(a.owner)
    assert store.acquire_lock(b.owner, 600.0)
    b.is_leader = True
    b._lock_due = clock.now + timedelta(seconds=100)
    b._revision = store.revision()  # B does not reload: it plans from stale state
    b.tick()
    # Then the instant is not sent again
    assert instants(app) == []
    # And the next instant is sent once, by B
    clock.advance(10)
    b.tick()
    assert instants(app) == [iso(20)]


def test_a_deposed_leader_cannot_enqueue(tmp_path: Path) -> None:
    app, clock = make_app(), Clock()
    store = SQLiteScheduleStore(f"sqlite:///{tmp_path / 'beat.db'}")
    a, a_events = make_core(app, clock, config_entry(), store=store)
    a.tick()
    store.release_lock(a.owner)
    assert store.acquire_lock("someone-else", 600.0)
    clock.advance(10)
    a.tick()  # it still believes it leads: its lock renewal is not due yet
    assert instants(app) == []
    assert not a.is_leader and a_events.kinds(ev.LEADER_LOST)


def test_state_persists_across_a_restart(tmp_path: Path) -> None:
    # Given a beat that sent instants 10 and 20 and then stopped
    app, clock = make_app(), Clock()
    url = f"sqlite:///{tmp_path / 'beat.db'}"
    first, _ = make_core(app, clock, config_entry(), store=SQLiteScheduleStore(url))
    first.tick()
    for _ in range(2):
        clock.advance(10)
        first.tick()
    first.shutdown()
    assert instants(app) == [iso(10), iso(20)]
    # When a new beat starts 25 s later on the same store
    clock.advance(25)
    second, events = make_core(app, clock, config_entry(), store=SQLiteScheduleStore(url))
    second.tick()
    # Then it neither repeats 10/20 nor skips silently: 30 and 40 were missed, one late run
    assert instants(app) == [iso(40)]
    assert events.kinds(ev.MISSED)[0].detail == {"count": 1, "reason": "coalesced"}
    assert second.entries["tick"].start_date == T0  # the anchor survived


def test_changing_a_config_entry_schedule_re_anchors_it(tmp_path: Path) -> None:
    app, clock = make_app(), Clock()
    url = f"sqlite:///{tmp_path / 'beat.db'}"
    first, _ = make_core(app, clock, config_entry(), config_entry("gone"), store=SQLiteScheduleStore(url))
    first.tick()
    first.shutdown()
    clock.advance(3)
    second, _ = make_core(app, clock, config_entry(schedule=every(seconds=4)), store=SQLiteScheduleStore(url))
    assert second.tick() == pytest.approx(4.0)
    assert set(second.entries) == {"tick"}


def test_sqlite_store_on_the_broker_file_enqueues_in_the_claim(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'shared.db'}"
    app, clock = make_app(broker=url), Clock()
    store = SQLiteScheduleStore(url, broker_url=url)
    assert store.enqueues_atomically
    core, _ = make_core(app, clock, config_entry(), store=store)
    core.tick()
    clock.advance(10)
    core.tick()
    assert instants(app) == [iso(10)]


def test_a_failing_event_sink_never_stops_beat() -> None:
    app, clock = make_app(), Clock()
    core, _ = make_core(app, clock, config_entry())

    def broken(event: ev.BeatEvent) -> None:
        raise RuntimeError("listener bug")

    core.sink.add(broken)
    core.tick()
    clock.advance(10)
    core.tick()
    assert instants(app) == [iso(10)]


def test_heartbeat_file_is_written(tmp_path: Path) -> None:
    app, clock = make_app(), Clock()
    path = tmp_path / "hb"
    core, _ = make_core(app, clock, config_entry(), heartbeat_path=str(path))
    core.tick()
    stamp, role, owner = path.read_text().split()
    assert role == "leader" and owner == core.owner and float(stamp) > 0


@pytest.mark.parametrize("kind", ["memory", "sqlite"])
def test_an_instant_claimed_but_never_sent_is_reported_missed_by_the_next_leader(kind: str, tmp_path: Path) -> None:
    # Given a leader that claimed instant 10 to publish it afterwards, and died before sending
    app, clock = make_app(), Clock()
    store: Any = MemoryScheduleStore() if kind == "memory" else SQLiteScheduleStore(f"sqlite:///{tmp_path / 'b.db'}")
    dead, _ = make_core(app, clock, config_entry(), store=store)
    dead.tick()
    clock.advance(10)
    entry = dead.entries["tick"]
    instant = T0 + timedelta(seconds=10)
    advanced = EntryState(next_run_time=T0 + timedelta(seconds=20), last_run_time=instant)
    assert store.claim(dead.owner, "tick", instant, instant, advanced, [], will_publish=True) is ClaimResult.CLAIMED
    assert entry.state.next_run_time == instant
    store.release_lock(dead.owner)  # its lock runs out
    # When another beat takes the lead
    successor, events = make_core(app, clock, config_entry(), store=store)
    successor.tick()
    # Then the lost instant is reported once, never sent twice, and the schedule goes on
    missed = events.kinds(ev.MISSED)
    assert [(e.instants, e.detail["reason"]) for e in missed] == [
        ((instant,), "the previous leader stopped before sending")
    ]
    assert instants(app) == []
    assert not store.unsent_claim("tick", instant)
    clock.advance(10)
    successor.tick()
    assert instants(app) == [iso(20)]


def test_a_daily_fixed_time_entry_runs_once_on_both_dst_change_days() -> None:
    # Given a daily 02:30 Berlin entry, driven through both change nights minute by minute
    nights = (datetime(2025, 3, 29, 23, 0, tzinfo=timezone.utc), datetime(2025, 10, 25, 23, 0, tzinfo=timezone.utc))
    for night in nights:
        app, clock = make_app(), Clock(night)
        core, _ = make_core(app, clock, config_entry("daily", crontab(minute=30, hour=2, tz="Europe/Berlin")))
        sent: list[str] = []
        for _ in range(4 * 60):
            core.tick()
            sent += instants(app)
            clock.advance(60)
        # Then it ran exactly once that night: right after the jump, or in the first pass
        expected = "2025-03-30T03:00:00+02:00" if night.month == 3 else "2025-10-26T02:30:00+02:00"
        assert [datetime.fromisoformat(s) for s in sent] == [datetime.fromisoformat(expected)]


def test_an_hourly_wildcard_entry_runs_in_both_passes_of_the_repeated_hour() -> None:
    app, clock = make_app(), Clock(datetime(2025, 10, 25, 23, 0, tzinfo=timezone.utc))
    core, _ = make_core(app, clock, config_entry("hourly", crontab(minute=30, tz="Europe/Berlin")))
    sent: list[str] = []
    for _ in range(3 * 60):
        core.tick()
        sent += instants(app)
        clock.advance(60)
    # 01:30 CEST, 02:30 CEST, 02:30 CET: an hour apart in real time, each once
    assert [datetime.fromisoformat(s).astimezone(timezone.utc).hour for s in sent] == [23, 0, 1]


class FlakyStore(MemoryScheduleStore):
    """A store whose change notifications fail (a Redis connection drop), then recover."""

    def __init__(self) -> None:
        super().__init__()
        self.failures = 0

    def wait_for_change(self, timeout: float, stop: Any, known: int | None = None) -> bool:
        if self.failures:
            self.failures -= 1
            raise StoreError("connection lost")
        return super().wait_for_change(timeout, stop, known)


def test_a_failing_change_wait_neither_stops_nor_spins_the_loop() -> None:
    app, clock = make_app(), Clock()
    store = FlakyStore()
    core, events = make_core(app, clock, config_entry(), store=store)
    store.failures = 1
    started = time.monotonic()
    core.wait(0.3)
    assert time.monotonic() - started >= 0.28  # slept on, did not spin
    assert [e.kind for e in events.events] == [ev.ERROR]
    core.wait(0.05)  # recovered
    assert events.kinds(ev.ERROR) == events.events[:1]


def test_sqlite_claim_inserts_messages_only_with_the_claim(tmp_path: Path) -> None:
    from taskq.brokers.sqlite import SQLiteBroker

    url = f"sqlite:///{tmp_path / 'shared.db'}"
    app = make_app(broker=url)
    store = SQLiteScheduleStore(url, broker_url=url)
    entry = config_entry()
    entry.state = EntryState(next_run_time=T0)
    store.add(entry)
    publication = app.build_publication("t.tick", [], {})
    advanced = EntryState(next_run_time=T0 + timedelta(seconds=10), last_run_time=T0)
    broker = SQLiteBroker(url)
    queue = app.conf.task_default_queue
    # Not the leader, or a stale plan: nothing inserted
    assert store.claim("me", "tick", T0, T0, advanced, [publication]) is ClaimResult.NOT_LEADER
    store.acquire_lock("me", 60)
    assert store.claim("me", "tick", T0, T0 - timedelta(seconds=1), advanced, [publication]) is ClaimResult.STALE
    assert broker.queue_length(queue) == 0
    # Claimed: the message is there, in the same transaction; claimed again: not a second time
    assert store.claim("me", "tick", T0, T0, advanced, [publication]) is ClaimResult.CLAIMED
    assert broker.queue_length(queue) == 1
    assert store.claim("me", "tick", T0, T0 + timedelta(seconds=10), advanced, [publication]) is ClaimResult.TAKEN
    assert broker.queue_length(queue) == 1


def test_a_one_off_job_runs_once_and_is_then_removed() -> None:
    app, clock = make_app(), Clock()
    store = MemoryScheduleStore()
    core, events = make_core(app, clock, store=store)
    api = ScheduleAPI(store, clock, on_change=core.wake)
    api.add_job("t.once", at(T0 + timedelta(seconds=5)), id="once")
    assert core.tick() == pytest.approx(5.0)
    clock.advance(5)
    core.tick()
    assert instants(app) == [iso(5)]
    assert store.get("once") is None and "once" not in core.entries
    assert [e.detail for e in events.kinds(ev.ENTRY_REMOVED)] == [{"reason": "schedule finished"}]


class InlineExecutor:
    """An in-process executor: no messages, the run starts after the claim."""

    def __init__(self) -> None:
        self.started: list[tuple[str, datetime]] = []

    def publications(self, entry: Entry, instant: datetime) -> list[Any]:
        return []

    def start(self, entry: Entry, instant: datetime, publications: Any, enqueued: bool) -> None:
        assert publications == [] and not enqueued
        self.started.append((entry.id, instant))

    def unfinished(self, pending: Any) -> list[tuple[str, float | None]]:
        return list(pending)

    def track(self, entry: Entry, run_ids: Any) -> list[tuple[str, float | None]]:
        return [(run_id, None) for run_id in run_ids]


def test_entries_go_to_the_executor_they_name() -> None:
    # Given a core with the broker executor and an in-process one
    app, clock, recorder = make_app(), Clock(), Recorder()
    inline = InlineExecutor()
    store = MemoryScheduleStore()
    core = SchedulerCore(
        store, {"broker": AppSubmitter(app), "inline": inline}, clock=clock, sink=recorder, lock_ttl=600.0,
        config_entries=[config_entry("queued"), config_entry("local").copy(executor="inline"),
                        config_entry("lost").copy(executor="nowhere")],
    )
    core.tick()
    clock.advance(10)
    core.tick()
    # Then each went its way, and the one naming no known executor is reported, not sent
    assert instants(app) == [iso(10)]
    assert inline.started == [("local", T0 + timedelta(seconds=10))]
    assert not store.unsent_claim("local", T0 + timedelta(seconds=10))
    errors = recorder.kinds(ev.ERROR)
    assert [e.entry_id for e in errors] == ["lost"] and "no executor 'nowhere'" in errors[0].detail["message"]
    assert core.entries["lost"].state.next_run_time == T0 + timedelta(seconds=20)
    submitted = {e.entry_id: e.detail["executor"] for e in recorder.kinds(ev.SUBMITTED)}
    assert submitted == {"queued": "broker", "local": "inline"}


def test_store_urls_are_logged_without_passwords() -> None:
    from taskq.display import redact

    assert redact("redis://:s3cret@host:6379/0?prefix=p") == "redis://:***@host:6379/0?prefix=p"
    assert redact("redis://user:pw@host/0") == "redis://user:***@host/0"
    assert redact("sqlite:///beat.db") == "sqlite:///beat.db"
