"""Redis broker behaviour beyond the contract suite: lanes, round trips, claims, fork, errors."""

from __future__ import annotations

import multiprocessing
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import redis

from taskq.brokers.base import Delivery, Publication
from taskq.brokers.redis import GROUP, RedisBroker
from taskq.brokers.redis.connection import Plain
from taskq.config import Settings
from taskq.envelope import Envelope
from taskq.errors import BrokerError
from tests.contract.redis_factories import delete_prefixed, unique_prefix
from tests.servers import free_port, require_redis

MakeBroker = Callable[..., RedisBroker]


def envelope(task_id: str, priority: int = 0) -> Envelope:
    return Envelope({"task": "t.noop", "id": task_id, "lang": "py"}, b"[[], {}, {}]", properties={"priority": priority})


def ids(deliveries: list[Delivery]) -> list[str]:
    return [d.envelope.id for d in deliveries if d.envelope]


@pytest.fixture
def make_broker() -> Iterator[MakeBroker]:
    """Brokers on the shared Redis under one unique prefix; each is its own consumer."""
    url = require_redis()
    prefix = unique_prefix()
    made: list[RedisBroker] = []

    def make(recovery_time: float = 1.0, **options: Any) -> RedisBroker:
        settings = Settings()
        settings.recovery_time = recovery_time
        settings.broker_transport_options = {"global_keyprefix": prefix, **options}
        made.append(RedisBroker(url, settings))
        return made[-1]

    yield make
    for broker in made:
        broker.close()
    delete_prefixed(url, prefix)


class CommandCounter:
    """Counts round trips: single commands and pipeline executions on a client."""

    def __init__(self, client: redis.Redis, monkeypatch: pytest.MonkeyPatch) -> None:
        self.calls: list[str] = []
        original = client.execute_command

        def counted(*args: Any, **kwargs: Any) -> Any:
            self.calls.append(str(args[0]))
            return original(*args, **kwargs)

        monkeypatch.setattr(client, "execute_command", counted)


def pipeline_sizes(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """The command count of every redis-py pipeline executed from now on (appended as they run)."""
    sizes: list[int] = []
    execute = redis.client.Pipeline.execute

    def counted(pipe: redis.client.Pipeline, *args: Any, **kwargs: Any) -> Any:
        sizes.append(len(pipe.command_stack))
        return execute(pipe, *args, **kwargs)

    monkeypatch.setattr(redis.client.Pipeline, "execute", counted)
    return sizes


class SocketWrites:
    """Every command written to any redis-py connection, however it was issued: one write
    is one round trip (a pipeline or script call included)."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.writes: list[bytes] = []
        send = redis.connection.AbstractConnection.send_packed_command

        def sent(conn: redis.connection.AbstractConnection, command: Any, check_health: bool = True) -> None:
            self.writes.append(command if isinstance(command, bytes) else b"".join(command))
            send(conn, command, check_health)

        monkeypatch.setattr(redis.connection.AbstractConnection, "send_packed_command", sent)

    def commands(self) -> list[bytes]:
        """Command names, without a connection's handshake and health-check PING."""
        names = [write.split(b"\r\n")[2] for write in self.writes]
        return [name for name in names if name not in (b"HELLO", b"CLIENT", b"AUTH", b"SELECT", b"PING")]


def drop_own_connection(broker: RedisBroker) -> None:
    """Have Redis close the connection this thread publishes on (it exists after a publish)."""
    host, port = broker._conn._local.conn._sock.getsockname()[:2]
    admin = redis.Redis.from_url(broker.url)
    try:
        assert admin.client_kill(f"{host}:{port}")
    finally:
        admin.close()


def drain(broker: RedisBroker, queue: str) -> list[str]:
    """Ids of everything in the queue, fetched and acked in order."""
    got: list[str] = []
    while batch := broker.fetch([queue], 500, timeout=0.5):
        got += ids(batch)
        broker.ack(batch)
    return got


def test_priorities_run_highest_lane_first_across_queues(make_broker: MakeBroker) -> None:
    broker = make_broker()
    a, b = "qa-" + uuid.uuid4().hex[:6], "qb-" + uuid.uuid4().hex[:6]
    broker.publish_many(
        [
            Publication(a, envelope("a0", 0)),
            Publication(b, envelope("b9", 9)),
            Publication(a, envelope("a5", 5)),
            Publication(a, envelope("a9", 9)),
            Publication(b, envelope("b0", 0)),
            Publication(b, envelope("b-clamped", 42)),  # out of range: the top lane
        ]
    )
    got = broker.fetch([a, b], 10, timeout=2)
    # Lane 9 first (queue order breaks ties, then age), then 5, then 0.
    assert ids(got) == ["a9", "b9", "b-clamped", "a5", "a0", "b0"]
    broker.ack(got)
    assert broker.queue_length(a) == broker.queue_length(b) == 0


def test_delayed_message_keeps_its_priority_when_due(make_broker: MakeBroker) -> None:
    broker = make_broker()
    q = "q-" + uuid.uuid4().hex[:8]
    broker.publish(q, envelope("late-urgent", 9), eta=time.time() + 0.3)
    broker.publish(q, envelope("now-low", 0))
    [first] = broker.fetch([q], 1, timeout=2)
    assert ids([first]) == ["now-low"]
    broker.requeue([first])
    deadline = time.time() + 0.3
    while time.time() < deadline:  # let the eta pass without fetching
        time.sleep(0.05)
    got = broker.fetch([q], 2, timeout=2)
    assert ids(got) == ["late-urgent", "now-low"]
    broker.ack(got)


def test_batch_fetch_and_batch_ack_take_one_round_trip_each(
    make_broker: MakeBroker, monkeypatch: pytest.MonkeyPatch
) -> None:
    broker = make_broker()
    q = "q-" + uuid.uuid4().hex[:8]
    broker.publish_many([Publication(q, envelope(f"m{i}")) for i in range(50)])
    fetches = CommandCounter(broker._conn.blocking, monkeypatch)
    got = broker.fetch([q], 50, timeout=2)
    assert len(got) == 50
    assert fetches.calls == ["EVALSHA"]
    pipelines = pipeline_sizes(monkeypatch)
    commands = CommandCounter(broker.client, monkeypatch)
    broker.ack(got)
    assert pipelines == [] and commands.calls == ["EVALSHA"]  # the ACK script: owner check + XACK + XDEL
    assert broker.queue_length(q) == 0


def test_idle_fetch_blocks_in_redis_instead_of_polling(
    make_broker: MakeBroker, monkeypatch: pytest.MonkeyPatch
) -> None:
    broker = make_broker(recovery_time=30.0)
    q = "q-" + uuid.uuid4().hex[:8]
    broker.fetch([q], 5, timeout=0.05)  # a new queue: its streams and groups are made
    counter = CommandCounter(broker._conn.blocking, monkeypatch)
    assert broker.fetch([q], 5, timeout=2.0) == []
    # One script call and one XREADGROUP BLOCK per second at most (max_block is 1 s).
    assert len(counter.calls) <= 6, counter.calls


def fetch_in_thread(
    broker: RedisBroker, queue: str, monkeypatch: pytest.MonkeyPatch
) -> tuple[threading.Thread, list[Delivery]]:
    """Start a long fetch in a thread; return once it is about to wait in its blocking read."""
    got: list[Delivery] = []
    blocking = threading.Event()
    original = broker._block

    def block(*args: Any) -> list[Delivery]:
        blocking.set()
        return original(*args)

    monkeypatch.setattr(broker, "_block", block)
    thread = threading.Thread(target=lambda: got.extend(broker.fetch([queue], 5, timeout=20)))
    thread.start()
    assert blocking.wait(10), "the fetch never reached its blocking read"
    return thread, got


def test_blocked_fetch_wakes_when_a_message_arrives(make_broker: MakeBroker, monkeypatch: pytest.MonkeyPatch) -> None:
    consumer = make_broker(recovery_time=100.0, max_block=30.0)  # a 5 s wait without a wake-up
    producer = make_broker()
    q = "q-" + uuid.uuid4().hex[:8]
    consumer.fetch([q], 1, timeout=0.05)  # the queue's streams and groups exist now
    thread, got = fetch_in_thread(consumer, q, monkeypatch)
    sent = time.monotonic()
    producer.publish(q, envelope("wake"))
    thread.join(timeout=20)
    assert ids(got) == ["wake"]
    assert time.monotonic() - sent < 3.0  # woken by Redis, not by the end of its 5 s wait
    consumer.ack(got)


def test_a_blocking_read_names_queue_and_lane_from_the_stream_it_read(
    make_broker: MakeBroker, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Queue names that read like another queue's lane or wake stream: what the blocking read
    claims still comes with its own queue and priority lane."""
    consumer = make_broker(recovery_time=100.0, max_block=30.0)
    producer = make_broker()
    base = "q-" + uuid.uuid4().hex[:8]
    sends = [(f"{base}:3", 7), (f"{base}:wake", 0), (base, 3), (f"{base}:12", 9)]
    queues = [queue for queue, _ in sends]
    for queue, priority in sends:  # the lanes in use become known to the fetch
        producer.publish(queue, envelope("first", priority))
    consumer.ack(consumer.fetch(queues, 10, timeout=1))
    assert consumer.fetch(queues, 10, timeout=0.3) == []  # reads the wake entries the new lanes left
    read: list[Delivery] = []  # what the blocking read claimed (after the script found nothing)
    blocking, original = threading.Event(), consumer._block

    def block(*args: Any) -> list[Delivery]:
        blocking.set()
        taken = original(*args)
        read.extend(taken)
        return taken

    monkeypatch.setattr(consumer, "_block", block)
    for queue, priority in sends:
        read.clear()
        blocking.clear()
        thread = threading.Thread(target=lambda: consumer.fetch(queues, 5, timeout=20))
        thread.start()
        assert blocking.wait(10), "the fetch never reached its blocking read"
        producer.publish(queue, envelope(queue, priority))
        thread.join(timeout=20)
        assert [(ids([d]), d.queue, d.tag[0]) for d in read] == [([queue], queue, producer.lane_key(queue, priority))]
        consumer.ack(read)


def test_requeue_keeps_the_redeliveries_a_message_already_had(make_broker: MakeBroker) -> None:
    broker = make_broker(recovery_time=0.5)
    q = "q-" + uuid.uuid4().hex[:8]
    broker.publish(q, envelope("m"))
    broker.fetch([q], 1, timeout=2)  # claimed, never extended: it expires
    [again] = broker.fetch([q], 1, timeout=5)
    assert again.redeliveries == 1
    broker.requeue([again])  # a warm-shutdown return: must not count, must not forget
    [back] = broker.fetch([q], 1, timeout=2)
    assert back.redeliveries == 1
    broker.ack([back])


def test_a_claim_taken_over_is_not_stolen_back_or_duplicated(make_broker: MakeBroker) -> None:
    slow, other = make_broker(recovery_time=0.5), make_broker(recovery_time=0.5)
    q = "q-" + uuid.uuid4().hex[:8]
    slow.publish(q, envelope("m"))
    [stale] = slow.fetch([q], 1, timeout=2)
    [taken] = other.fetch([q], 1, timeout=5)  # slow's claim expired
    assert taken.redeliveries == 1
    slow.extend([stale])  # too late: the claim belongs to `other` now
    slow.requeue([stale])  # must not put a second copy on the queue
    assert slow.fetch([q], 1, timeout=0.3) == []
    client = redis.Redis.from_url(slow.url)
    [pending] = client.xpending_range(taken.tag[0], GROUP, "-", "+", 10)
    client.close()
    assert pending["consumer"].decode() == other.consumer
    other.ack([taken])
    assert slow.queue_length(q) == 0


def _child_fetch(broker: RedisBroker, queue: str, out: Any) -> None:
    [d] = broker.fetch([queue], 1, timeout=2)
    broker.ack([d])
    out.put((broker.consumer, ids([d])))


def test_forked_child_uses_its_own_connections_and_consumer(make_broker: MakeBroker) -> None:
    broker = make_broker()
    q = "q-" + uuid.uuid4().hex[:8]
    broker.publish_many([Publication(q, envelope("parent")), Publication(q, envelope("child"))])
    [mine] = broker.fetch([q], 1, timeout=2)  # the parent's pools hold open connections now
    ctx = multiprocessing.get_context("fork")
    out = ctx.Queue()
    child = ctx.Process(target=_child_fetch, args=(broker, q, out))
    child.start()
    child_consumer, child_ids = out.get(timeout=10)
    child.join(timeout=10)
    assert child.exitcode == 0
    assert child_ids == ["child"] and child_consumer != broker.consumer
    broker.extend([mine])  # the parent's connections survived the child
    broker.ack([mine])
    assert broker.queue_length(q) == 0


def test_undecodable_entry_is_delivered_for_dead_lettering(make_broker: MakeBroker) -> None:
    broker = make_broker()
    q = "q-" + uuid.uuid4().hex[:8]
    client = redis.Redis.from_url(broker.url)
    client.xadd(broker.lane_key(q, 0), {"m": b"\xff not json"})
    client.close()
    [d] = broker.fetch([q], 1, timeout=2)
    assert d.envelope is None and d.raw == b"\xff not json" and d.error
    broker.dead_letter(d, "undecodable")
    [dead] = broker.dead_letters(q)
    assert dead.id.startswith("undecodable-") and dead.raw == b"\xff not json" and dead.reason == "undecodable"
    assert broker.purge_dead_letters() == 1


def test_purge_keeps_claimed_messages(make_broker: MakeBroker) -> None:
    broker = make_broker(recovery_time=30.0)
    q = "q-" + uuid.uuid4().hex[:8]
    broker.publish_many([Publication(q, envelope(f"m{i}")) for i in range(4)])
    broker.publish(q, envelope("delayed"), eta=time.time() + 60)
    held = broker.fetch([q], 1, timeout=2)
    assert broker.purge(q) == 4  # three ready, one delayed
    assert broker.queue_length(q) == 1
    broker.ack(held)
    assert broker.queue_length(q) == 0 and broker.queues() == []


def test_rediss_url_uses_tls_without_connecting() -> None:
    broker = RedisBroker("rediss://127.0.0.1:1/0", Settings())
    assert broker.client.connection_pool.connection_class is redis.SSLConnection
    broker.close()


def test_unreachable_redis_is_a_broker_error_and_fetch_stays_alive() -> None:
    settings = Settings()
    settings.broker_transport_options = {"retries": 1, "socket_connect_timeout": 0.2}
    broker = RedisBroker(f"redis://127.0.0.1:{free_port()}/0", settings)
    with pytest.raises(BrokerError, match="redis broker publish"):
        broker.publish("q", envelope("x"))
    start = time.monotonic()
    assert broker.fetch(["q"], 1, timeout=0.5) == []  # the worker's loop keeps going
    assert time.monotonic() - start < 3
    broker.close()


def test_requeued_dead_letters_return_to_their_priority_lane(make_broker: MakeBroker) -> None:
    broker = make_broker()
    q = "q-" + uuid.uuid4().hex[:8]
    broker.publish(q, envelope("urgent", 7))
    [d] = broker.fetch([q], 1, timeout=2)
    broker.dead_letter(d, "poison")
    client = redis.Redis.from_url(broker.url)
    client.delete(broker.lanes_key(q))  # even with the lane registry gone, the requeue restores it
    client.close()
    broker.publish(q, envelope("normal", 0))
    assert broker.requeue_dead_letters(q) == 1
    got = broker.fetch([q], 2, timeout=2)
    assert ids(got) == ["urgent", "normal"]
    assert got[0].tag[0] == broker.lane_key(q, 7)
    broker.ack(got)


def test_consumers_of_gone_processes_are_forgotten_but_not_claim_holders(make_broker: MakeBroker) -> None:
    gone = make_broker(recovery_time=0.5, forget_consumer_after=0.2)
    holder = make_broker(recovery_time=0.5, forget_consumer_after=0.2)
    alive = make_broker(recovery_time=0.5, forget_consumer_after=0.2)
    q = "q-" + uuid.uuid4().hex[:8]
    gone.publish_many([Publication(q, envelope("m1")), Publication(q, envelope("m2"))])
    gone.ack(gone.fetch([q], 1, timeout=2))  # `gone` now exists in the group, holding nothing
    held = holder.fetch([q], 1, timeout=2)  # `holder` keeps a claim alive
    client = redis.Redis.from_url(gone.url)
    try:
        names = lambda: {c["name"].decode() for c in client.xinfo_consumers(gone.lane_key(q, 0), GROUP)}  # noqa: E731
        assert {gone.consumer, holder.consumer} <= names()
        deadline = time.monotonic() + 5
        while gone.consumer in names():  # alive's fetches look for abandoned claims every 50 ms
            assert time.monotonic() < deadline, "the idle consumer was never forgotten"
            holder.extend(held)
            assert alive.fetch([q], 1, timeout=0.1) == []
        assert holder.consumer in names()  # a consumer holding a claim is never deleted
        holder.ack(held)
    finally:
        client.close()


@pytest.mark.parametrize("fair", [False, True])
def test_queues_at_one_priority_are_ordered_or_take_turns(make_broker: MakeBroker, fair: bool) -> None:
    broker = make_broker(fair_queues=fair)
    a, b = "qa-" + uuid.uuid4().hex[:6], "qb-" + uuid.uuid4().hex[:6]
    broker.publish_many([Publication(q, envelope(f"{q[:2]}{i}")) for i in range(3) for q in (a, b)])
    order = []
    for _ in range(4):
        [d] = broker.fetch([a, b], 1, timeout=2)
        order.append(d.queue)
        broker.ack([d])
    assert order == ([b, a, b, a] if fair else [a, a, a, b])


def test_rediss_broker_and_backend_work_over_tls(tmp_path: Any) -> None:
    from taskq import states
    from taskq.backends.redis import RedisBackend
    from tests.contract.redis_factories import ThrowawayRedis

    server = ThrowawayRedis(tmp_path, tls=True)
    server.start()
    broker, backend = RedisBroker(server.url, Settings()), RedisBackend(server.url, Settings())
    try:
        assert broker.client.connection_pool.connection_class is redis.SSLConnection
        broker.publish("tls", envelope("secure", 3))
        [d] = broker.fetch(["tls"], 1, timeout=2)
        assert ids([d]) == ["secure"]
        broker.ack([d])
        timer = threading.Timer(0.3, backend.store, ("tls-1", states.SUCCESS, "ok"))
        timer.start()  # whether before or during the wait, the waiter gets it
        assert backend.wait_for("tls-1", timeout=5)["result"] == "ok"
    finally:
        broker.close()
        backend.close()
        server.stop()


def test_publications_commit_with_a_callers_transaction(make_broker: MakeBroker) -> None:
    broker = make_broker()
    q = "q-" + uuid.uuid4().hex[:8]
    marker = broker.prefix + "caller-write"
    client = redis.Redis.from_url(broker.url)
    try:
        with client.pipeline(transaction=True) as pipe:
            pipe.multi()
            pipe.set(marker, "claimed")
            items = [Publication(q, envelope("now", 4)), Publication(q, envelope("later"), time.time() + 60)]
            broker.add_to_pipeline(pipe, items)
            assert broker.queue_length(q) == 0  # nothing is visible before EXEC
            pipe.execute()
        assert client.get(marker) == b"claimed" and broker.queue_length(q) == 2
    finally:
        client.close()
    [d] = broker.fetch([q], 5, timeout=2)
    assert ids([d]) == ["now"] and d.tag[0] == broker.lane_key(q, 4)
    broker.ack([d])


def test_ack_after_redis_lost_the_group_is_harmless(make_broker: MakeBroker) -> None:
    broker = make_broker()
    q = "q-" + uuid.uuid4().hex[:8]
    broker.publish(q, envelope("lost-with-redis"))
    [d] = broker.fetch([q], 1, timeout=2)
    client = redis.Redis.from_url(broker.url)
    client.delete(broker.lane_key(q, 0))  # Redis restarted without persistence...
    client.close()
    broker.publish(q, envelope("new"))  # ...and a producer recreated the stream, without group
    broker.ack([d])
    [new] = broker.fetch([q], 1, timeout=2)
    assert ids([new]) == ["new"]
    broker.ack([new])


def test_a_new_delayed_message_wakes_a_blocked_fetch_for_its_eta(
    make_broker: MakeBroker, monkeypatch: pytest.MonkeyPatch
) -> None:
    consumer = make_broker(recovery_time=100.0, max_block=30.0)  # a 5 s wait, knowing no eta
    producer = make_broker()
    q = "q-" + uuid.uuid4().hex[:8]
    consumer.fetch([q], 1, timeout=0.05)  # the queue's streams and groups exist now
    thread, got = fetch_in_thread(consumer, q, monkeypatch)
    sent = time.monotonic()
    producer.publish(q, envelope("soon"), eta=time.time() + 0.5)
    thread.join(timeout=20)
    assert ids(got) == ["soon"]
    assert 0.4 < time.monotonic() - sent < 3.0  # at its eta, not at the end of the 5 s wait
    consumer.ack(got)


def test_many_abandoned_claims_are_all_recovered_in_small_batches(make_broker: MakeBroker) -> None:
    dead, rescuer = make_broker(recovery_time=0.5), make_broker(recovery_time=0.5)
    q = "q-" + uuid.uuid4().hex[:8]
    sent = [Publication(q, envelope(f"m{i}", priority=i % 3)) for i in range(30)]
    dead.publish_many(sent)
    assert len(dead.fetch([q], 30, timeout=2)) == 30  # then its process "dies": no ack, no extend
    recovered: list[Delivery] = []
    deadline = time.monotonic() + 10
    while len(recovered) < 30:
        assert time.monotonic() < deadline, f"only {len(recovered)} of 30 recovered"
        batch = rescuer.fetch([q], 4, timeout=0.5)
        assert len(batch) <= 4
        recovered += batch
        rescuer.ack(batch)
    assert sorted(ids(recovered)) == sorted(p.envelope.id for p in sent)
    assert {d.redeliveries for d in recovered} == {1}
    assert rescuer.queue_length(q) == 0


def test_an_abandoned_claim_behind_many_live_ones_is_found_within_the_recovery_time(
    make_broker: MakeBroker,
) -> None:
    live, dead, rescuer = (make_broker(recovery_time=1.0) for _ in range(3))
    q = "q-" + uuid.uuid4().hex[:8]
    live.publish_many([Publication(q, envelope(f"live{i}")) for i in range(800)])
    held = live.fetch([q], 800, timeout=2)  # 800 live claims first in the pending list
    dead.publish(q, envelope("abandoned"))
    assert ids(dead.fetch([q], 1, timeout=2)) == ["abandoned"]  # then its process "dies"
    start = time.monotonic()
    found: list[Delivery] = []
    while not found:
        live.extend(held)
        assert time.monotonic() - start < 4.0, "the abandoned claim was not found"
        found = rescuer.fetch([q], 1, timeout=0.2)  # prefetch 1: the smallest scan per call
    assert ids(found) == ["abandoned"] and found[0].redeliveries == 1
    # Claim timeout 0.9 s + a check every 0.1 s (+ slack for a loaded machine); a scan that
    # crossed the 800 live claims 40 at a time took over 3 s.
    assert time.monotonic() - start < 2.0
    rescuer.ack(found)
    live.ack(held)


def test_priority_holds_while_abandoned_claims_are_taken_over(make_broker: MakeBroker) -> None:
    dead, rescuer = make_broker(recovery_time=0.5), make_broker(recovery_time=0.5)
    q = "q-" + uuid.uuid4().hex[:8]
    dead.publish(q, envelope("abandoned-low", 0))
    dead.fetch([q], 1, timeout=2)  # its process "dies" holding a low-priority message
    deadline = time.time() + 0.6
    while time.time() < deadline:  # let the claim become abandoned without fetching
        time.sleep(0.05)
    rescuer.publish(q, envelope("new-urgent", 9))
    first = rescuer.fetch([q], 1, timeout=2)
    second = rescuer.fetch([q], 1, timeout=2)
    assert ids(first) == ["new-urgent"] and ids(second) == ["abandoned-low"]
    assert second[0].redeliveries == 1
    rescuer.ack(first + second)


def _child_publish(broker: RedisBroker, queue: str) -> None:
    broker.publish(queue, envelope("from-child"))


def test_a_fork_while_another_thread_holds_the_connection_lock_does_not_deadlock(make_broker: MakeBroker) -> None:
    broker = make_broker()
    q = "q-" + uuid.uuid4().hex[:8]
    broker.queue_length(q)
    ctx = multiprocessing.get_context("fork")
    with broker._conn._lock:  # as if another thread were inside the connector at fork time
        child = ctx.Process(target=_child_publish, args=(broker, q))
        child.start()
    child.join(timeout=10)
    if child.exitcode is None:
        child.kill()
    assert child.exitcode == 0
    assert ids(broker.fetch([q], 1, timeout=2)) == ["from-child"]


def test_a_single_publish_is_one_command_and_the_queue_is_listed(
    make_broker: MakeBroker, monkeypatch: pytest.MonkeyPatch
) -> None:
    broker = make_broker()
    q = "q-" + uuid.uuid4().hex[:8]
    broker.publish(q, envelope("first"))  # registers the queue (a pipeline, once a minute)
    pipelines = pipeline_sizes(monkeypatch)
    writes = SocketWrites(monkeypatch)
    broker.publish(q, envelope("second"))
    assert pipelines == [] and writes.commands() == [b"XADD"]
    assert q in broker.queues() and broker.queue_length(q) == 2


def test_acks_can_join_a_callers_transaction(make_broker: MakeBroker) -> None:
    broker = make_broker()
    q = "q-" + uuid.uuid4().hex[:8]
    broker.publish_many([Publication(q, envelope(f"m{i}")) for i in range(3)])
    got = broker.fetch([q], 3, timeout=2)
    client = redis.Redis.from_url(broker.url)
    try:
        with client.pipeline(transaction=True) as pipe:
            pipe.set(broker.prefix + "results-of-the-batch", "stored")  # e.g. the batch's results
            broker.add_acks_to_pipeline(pipe, got)
            pipe.execute()
    finally:
        client.close()
    assert broker.queue_length(q) == 0


def test_a_bulk_publish_is_one_script_call_per_chunk(
    make_broker: MakeBroker, monkeypatch: pytest.MonkeyPatch
) -> None:
    broker = make_broker()
    q = "q-" + uuid.uuid4().hex[:8]
    broker.publish(q, envelope("warm"))  # connects and registers the queue
    writes = SocketWrites(monkeypatch)
    broker.publish_many([Publication(q, envelope(f"m{i}")) for i in range(2500)])
    assert writes.commands() == [b"EVAL"] * 3  # chunks of 1,000
    monkeypatch.undo()
    assert drain(broker, q) == ["warm"] + [f"m{i}" for i in range(2500)]


def test_a_mixed_chunk_is_one_script_call_and_keeps_lanes_and_etas(
    make_broker: MakeBroker, monkeypatch: pytest.MonkeyPatch
) -> None:
    broker = make_broker()
    q, other = "q-" + uuid.uuid4().hex[:8], "q-" + uuid.uuid4().hex[:8]
    soon = time.time() + 0.3
    writes = SocketWrites(monkeypatch)
    broker.publish_many(
        [
            Publication(q, envelope("low")),
            Publication(q, envelope("later", 9), eta=soon),
            Publication(other, envelope("elsewhere")),
            Publication(q, envelope("high", 9)),
            Publication(q, envelope("low2")),
        ]
    )
    assert writes.commands() == [b"EVAL"]
    monkeypatch.undo()
    assert ids(broker.fetch([q], 10, timeout=0.1)) == ["high", "low", "low2"]
    assert ids(broker.fetch([q], 10, timeout=2)) == ["later"]  # at its eta, in its lane
    assert ids(broker.fetch([other], 10, timeout=0.1)) == ["elsewhere"]
    assert {q, other} <= set(broker.queues())


@pytest.mark.parametrize("count", [1, 2500])
def test_a_publish_survives_the_server_dropping_its_connection(make_broker: MakeBroker, count: int) -> None:
    broker = make_broker()
    q = "q-" + uuid.uuid4().hex[:8]
    broker.publish(q, envelope("first"))
    broker.publish(q, envelope("second"))
    drop_own_connection(broker)
    sent = [f"m{i}" for i in range(count)]
    if count == 1:
        broker.publish(q, envelope(sent[0]))  # the dropped connection is noticed; resent via the pool
    else:
        broker.publish_many([Publication(q, envelope(i)) for i in sent])
    assert drain(broker, q) == ["first", "second", *sent]  # each once, in order


def test_an_error_reply_stops_the_stream_and_keeps_the_connection_in_step(make_broker: MakeBroker) -> None:
    broker = make_broker()
    key = broker.prefix + "list-" + uuid.uuid4().hex[:6]
    commands = [("RPUSH", key, "a"), ("INCR", key), ("RPUSH", key, "b"), ("RPUSH", key, "c")]
    with pytest.raises(BrokerError, match=r"WRONGTYPE.*after 2 call\(s\) completed"):
        broker._conn.direct_many(BrokerError, "test", commands)  # "b" was in flight: it ran
    conn = broker._conn._local.conn
    assert broker._conn.direct(BrokerError, "test", "LRANGE", key, 0, -1) == [b"a", b"b"]
    assert broker._conn._local.conn is conn  # still in step: the same connection answered


def test_a_transaction_is_one_write_and_its_replies_are_raw(make_broker: MakeBroker) -> None:
    broker = make_broker()
    key = broker.prefix + "tx-" + uuid.uuid4().hex[:6]
    broker._conn.direct(BrokerError, "test", "PING")  # the thread's connection exists
    conn = broker._conn._local.conn
    sock = conn._sock
    writes: list[bytes] = []

    class CountingSocket:
        def sendall(self, data: bytes) -> None:
            writes.append(bytes(data))
            sock.sendall(data)

        def __getattr__(self, name: str) -> Any:
            return getattr(sock, name)

    conn._sock = CountingSocket()
    try:
        replies = broker._conn.transaction(
            BrokerError, "test", [Plain(("SET", key, b"v", "PX", "60000")), Plain(("PUBLISH", key, b"v"))]
        )
    finally:
        conn._sock = sock
    assert replies == [b"OK", 0]
    (write,) = writes  # one system call for the whole transaction
    assert write.index(b"MULTI") < write.index(b"SET") < write.index(b"PUBLISH") < write.index(b"EXEC")
    assert 0 < broker._conn.client.pttl(key) <= 60000


def test_a_refused_transaction_raises_and_keeps_the_connection_in_step(make_broker: MakeBroker) -> None:
    broker = make_broker()
    key, other = (broker.prefix + name + uuid.uuid4().hex[:6] for name in ("list-", "other-"))
    broker._conn.direct(BrokerError, "test", "RPUSH", key, "a")
    conn = broker._conn._local.conn
    sock = conn._sock
    # A command that runs into an error: the others ran (MULTI does not roll back)
    with pytest.raises(BrokerError, match="WRONGTYPE"):
        broker._conn.transaction(BrokerError, "test", [Plain(("INCR", key)), Plain(("SET", other, "1"))])
    assert broker._conn.client.get(other) == b"1"
    # A command refused when queued: nothing ran
    with pytest.raises(BrokerError, match="wrong number of arguments"):
        broker._conn.transaction(BrokerError, "test", [Plain(("SET", other, "2")), Plain(("SET", key))])
    assert broker._conn.client.get(other) == b"1"
    assert broker._conn.direct(BrokerError, "test", "LRANGE", key, 0, -1) == [b"a"]
    assert broker._conn._local.conn is conn and conn._sock is sock  # in step: the same socket answered


def test_a_transaction_survives_the_server_dropping_its_connection(make_broker: MakeBroker) -> None:
    broker = make_broker()
    key = broker.prefix + "tx-" + uuid.uuid4().hex[:6]
    broker.publish("q-" + uuid.uuid4().hex[:8], envelope("first"))
    drop_own_connection(broker)
    replies = broker._conn.transaction(BrokerError, "test", [Plain(("SET", key, "v")), Plain(("INCR", key + "n"))])
    assert replies == [True, 1]  # the pooled client's pipeline answered (its callbacks)
    assert broker._conn.client.get(key) == b"v"


def test_no_health_check_ping_while_a_reply_is_in_flight(make_broker: MakeBroker) -> None:
    broker = make_broker()
    key = broker.prefix + "list-" + uuid.uuid4().hex[:6]
    broker._conn.direct(BrokerError, "test", "PING")
    conn = broker._conn._local.conn
    assert conn.retry._retries == 0  # it never retries by itself: the pooled fallback does
    conn.next_health_check = 0  # as after 30 s idle: the next command checks health first
    broker._conn.direct_many(BrokerError, "test", [("RPUSH", key, v) for v in "abc"])
    assert broker._conn.direct(BrokerError, "test", "LRANGE", key, 0, -1) == [b"a", b"b", b"c"]


def test_many_queues_are_read_a_window_at_a_time_in_turn(make_broker: MakeBroker) -> None:
    # Given 100 queues (beyond the window of 32), each with 3 messages
    from taskq.brokers.redis.broker import WINDOW

    broker = make_broker(recovery_time=30.0)
    queues = [f"mq{i:03}-{uuid.uuid4().hex[:6]}" for i in range(100)]
    assert len(queues) > 2 * WINDOW
    broker.publish_many([Publication(q, envelope(f"{q}/{n}")) for n in range(3) for q in queues])
    # When fetches of 10 follow each other
    first = [broker.fetch(queues, 10, timeout=2) for _ in range(4)]
    # Then each comes from another window of queues: the later queues are not starved
    windows = [{queues.index(d.queue) // WINDOW for d in batch} for batch in first]
    assert [len(w) for w in windows] == [1, 1, 1, 1]
    assert [w.pop() for w in windows] == [0, 1, 2, 3]
    # And everything is delivered once, with nothing lost or repeated
    got = [d.envelope.id for batch in first for d in batch if d.envelope]
    for batch in first:
        broker.ack(batch)
    for _ in range(200):
        batch = broker.fetch(queues, 10, timeout=0.5)
        if not batch:
            break
        got += [d.envelope.id for d in batch if d.envelope]
        broker.ack(batch)
    assert sorted(got) == sorted(f"{q}/{n}" for n in range(3) for q in queues)


def test_an_idle_fetch_over_many_queues_wakes_for_the_last_one(make_broker: MakeBroker) -> None:
    broker = make_broker(recovery_time=30.0)
    queues = [f"idle{i:03}-{uuid.uuid4().hex[:6]}" for i in range(100)]
    assert broker.fetch(queues, 10, timeout=0.2) == []  # makes the groups
    producer = make_broker()
    timer = threading.Timer(0.3, lambda: producer.publish(queues[-1], envelope("late")))
    timer.start()
    started = time.monotonic()
    got = broker.fetch(queues, 10, timeout=5)
    timer.join()
    assert ids(got) == ["late"] and time.monotonic() - started < 3
    broker.ack(got)
