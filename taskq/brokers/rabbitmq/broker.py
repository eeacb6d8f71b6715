"""RabbitMQ through pika: durable queues, persistent confirmed messages, manual acks.

* One connection per process, served by its own I/O thread (link.py), so any
  thread may publish, ack or extend, and heartbeats go on while a task runs. A forked
  child notices the new pid and opens its own.
* publish/publish_many return once RabbitMQ confirmed every message; a nack raises
  PublishError at once; a lost connection is retried (a new connection, with backoff) for
  ``publish_retry_timeout`` seconds, then raises PublishError. Nothing is dropped silently.
* Queues: passive declare first; a queue someone else declared is used as it is, with one
  log line saying what that costs (wire.py). Dead letters go to ``<queue>.dead``
  (publish, confirm, then ack the original), so they work on any queue.
* Delays wait in TTL queues that dead-letter into the target (wire.py); no
  consumer holds a delayed message.
* Claims live as long as the channel, and also expire when not extended within the
  recovery time (claims.py), as on every other broker.

Transport options (``settings.broker_transport_options``): ``confirm_publish`` (True),
``prefetch_count`` (deliveries RabbitMQ may push ahead per consumer; default 4 x the
fetch size, so acks in flight never stall the stream; fetch raises it when it must),
``publish_retry_timeout`` (10 s), ``timeout`` (10 s: connect, and wait for a confirm).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from functools import partial
from urllib.parse import unquote, urlsplit

import pika

from taskq.brokers.base import DeadLetter, Delivery, Publication, undecodable
from taskq.brokers.rabbitmq.claims import Claim, Claims
from taskq.brokers.rabbitmq.confirms import Confirms, Refused, Unencodable, Unroutable
from taskq.brokers.rabbitmq.dead import dead_letter_of, sweep
from taskq.brokers.rabbitmq.decode import undecodable_reason
from taskq.brokers.rabbitmq.hosts import failover_urls, open_link
from taskq.brokers.rabbitmq.link import ChannelClosed, Link
from taskq.brokers.rabbitmq.queues import QueueCatalog
from taskq.brokers.rabbitmq.wire import (
    DELIVERY_COUNT_HEADER,
    ETA_HEADER,
    FAILED_AT_HEADER,
    MAX_DELAY_LEVEL,
    ORIGIN_HEADER,
    REASON_HEADER,
    check_queue_name,
    dead_queue,
    delay_level,
    delay_queue,
    delay_queue_arguments,
    exchange_target,
    from_amqp,
    to_amqp,
)
from taskq.config import Settings
from taskq.display import redact, scrub
from taskq.envelope import Envelope
from taskq.errors import BrokerError, ConfigurationError, PublishError
from taskq.pid import current_pid

log = logging.getLogger("taskq.brokers.rabbitmq")
Outgoing = tuple[str, str, pika.BasicProperties, bytes]  # exchange ("" default), routing key, properties, body
_PREFETCH_FACTOR = 4  # default consumer prefetch = 4 x the fetch size (measured: 1x stalls the stream)
_CHUNK = 5000  # messages per hand-off to the I/O thread; all chunks are in flight together


class RabbitMQBroker:
    counts_redeliveries = False  # classic queues only flag a redelivery; the worker counts

    def __init__(self, url: str, settings: Settings | None = None) -> None:
        self.url = url
        self.settings = settings or Settings()
        options = self.settings.broker_transport_options
        self.confirm = bool(options.get("confirm_publish", True))
        self.prefetch: int | None = int(options["prefetch_count"]) if "prefetch_count" in options else None
        self.publish_retry_timeout = float(options.get("publish_retry_timeout", 10.0))
        self.timeout = float(options.get("timeout", 10.0))
        self._params = [connection_parameters(node) for node in failover_urls(url)]  # failover order
        self._lock = threading.RLock()
        self._sweep_lock = threading.Lock()
        self._pid = current_pid()
        self._link: Link | None = None
        self._claims: Claims | None = None
        self._queues = QueueCatalog(self.settings)
        self._backoff = 0.0
        self._next_attempt = 0.0
        self._last_error = ""
        self._unroutable = ""  # why the last message for an exchange came back

    # -- connection --------------------------------------------------------------------------
    def _session(self) -> tuple[Link, Claims]:
        with self._lock:
            if current_pid() != self._pid:  # forked: the parent's connection is not ours to use
                self._pid, self._link, self._claims = current_pid(), None, None
            if self._link is not None and self._link.alive and self._claims is not None:
                return self._link, self._claims
            wait = self._next_attempt - time.monotonic()
            if wait > 0:
                raise BrokerError(f"RabbitMQ unreachable ({self._last_error}); next attempt in {wait:.1f}s")
            try:
                link = open_link(self._params, self.timeout)
            except BrokerError as exc:
                self._backoff = min(max(self._backoff * 2, 0.2), 10.0)
                self._next_attempt = time.monotonic() + self._backoff
                self._last_error = str(exc)
                raise
            if self._link is not None:
                log.warning("Reconnected to RabbitMQ after: %s", self._link.closed_reason)
            self._backoff = 0.0
            self._link, self._claims = link, Claims(link, self.settings.recovery_time)
            return link, self._claims

    # -- publishing ------------------------------------------------------------------------
    def publish(self, queue: str, envelope: Envelope, eta: float | None = None) -> None:
        self.publish_many([Publication(queue, envelope, eta)])

    def publish_many(self, items: Sequence[Publication]) -> None:
        if items:
            self._publish(lambda link: [self._route(link, item) for item in items])

    def _route(self, link: Link, item: Publication, check_priority: bool = True) -> Outgoing:
        if item.exchange:
            return self._route_to_exchange(link, item)
        kind = self._queues.ensure_queue(link, item.queue)
        if check_priority and kind == "quorum" and item.envelope.priority > 0:
            raise ConfigurationError(
                f"queue {item.queue!r} is a quorum queue: RabbitMQ 3.x has no priorities there "
                f"(priority {item.envelope.priority} asked); send with priority 0 or use a classic queue"
            )
        level = delay_level(item.eta - time.time()) if item.eta is not None else None
        if level is None:
            return "", item.queue, to_amqp(item.envelope), item.envelope.body
        name = delay_queue(item.queue, level)
        self._queues.ensure_declared(link, name, delay_queue_arguments(item.queue, level))
        assert item.eta is not None
        return "", name, to_amqp(item.envelope, {ETA_HEADER: int(item.eta * 1000)}), item.envelope.body

    def _route_to_exchange(self, link: Link, item: Publication) -> Outgoing:
        """A message for an exchange (taskq/routing.py): the exchange and the queues of
        task_queues bound to it are declared first, so nothing published before a worker
        started is lost; a delayed one waits in a delay queue that dead-letters into the
        exchange with its routing key."""
        self._queues.ensure_exchange_routes(link, item.exchange, item.queue)
        level = delay_level(item.eta - time.time()) if item.eta is not None else None
        if level is None:
            return item.exchange, item.routing_key, to_amqp(item.envelope), item.envelope.body
        target = exchange_target(item.exchange, item.routing_key)
        name = delay_queue(target, level)
        self._queues.ensure_declared(link, name, delay_queue_arguments(item.routing_key, level, item.exchange))
        assert item.eta is not None
        return "", name, to_amqp(item.envelope, {ETA_HEADER: int(item.eta * 1000)}), item.envelope.body

    def _publish(self, build: Callable[[Link], list[Outgoing]]) -> None:
        """Publish what ``build`` prepares; retry what a lost connection left unconfirmed."""
        deadline = time.monotonic() + self.publish_retry_timeout
        pending: list[int] | None = None
        backoff = 0.1
        renewed = False
        while True:
            try:
                link, _ = self._session()
                messages = build(link)
                if pending is None:
                    pending = list(range(len(messages)))
                failed, refused = self._send(link, [messages[i] for i in pending])
                if refused and renewed:
                    raise Refused(
                        f"RabbitMQ refused {len(refused)} of {len(pending)} message(s) (basic.nack: "
                        "e.g. a full queue with x-overflow reject-publish)"
                    )
                if refused:
                    # Sent once more on a new channel: RabbitMQ 3.10 nacked every later publish
                    # on a channel that had published to a quorum queue whose leader's node was
                    # killed, while a new channel's publishes were confirmed.
                    renewed = True
                    link.renew_channel("publisher")
                    pending = [pending[i] for i in sorted(failed + refused)]
                    continue
                pending = [pending[i] for i in failed]
                if not pending:
                    return
                why = link.closed_reason or self._unroutable or "queue vanished"
                reason = f"{len(pending)} message(s) unconfirmed: {why}"
            except (Refused, Unencodable, ConfigurationError):
                raise
            except BrokerError as exc:
                reason = str(exc)
            if time.monotonic() >= deadline:
                raise PublishError(f"RabbitMQ did not confirm the message(s): {reason}")
            log.warning("Publishing to RabbitMQ failed (%s); retrying", reason)
            time.sleep(backoff)
            backoff = min(backoff * 2, 1.0)

    def _send(self, link: Link, messages: list[Outgoing]) -> tuple[list[int], list[int]]:
        """Send and wait for the confirms; returns the indexes worth sending again and those
        RabbitMQ refused (basic.nack)."""
        batches: list[tuple[int, Confirms | None]] = []
        sent = 0
        try:
            for start in range(0, len(messages), _CHUNK):
                chunk = messages[start : start + _CHUNK]
                outgoing = [(exchange, key, body, props) for exchange, key, props, body in chunk]
                batches.append((start, link.publish(outgoing, wait=self.confirm)))
                sent = start + len(chunk)
        except Unencodable:
            raise
        except BrokerError as exc:
            log.warning("Connection lost while publishing (%s)", exc)
        retry = list(range(sent, len(messages)))
        if not self.confirm:
            return retry, []
        refused: list[int] = []
        end = time.monotonic() + self.timeout
        for start, confirms in batches:
            if confirms is None:
                continue
            if not confirms.wait(max(0.0, end - time.monotonic())):
                raise PublishError(f"RabbitMQ did not confirm within {self.timeout}s")
            for index, error in confirms.errors.items():
                if isinstance(error, Refused):
                    refused.append(start + index)
                elif isinstance(error, Unroutable):
                    exchange, key = messages[start + index][:2]
                    if exchange:  # no queue bound there matches: declare the bindings again, then give up
                        self._queues.forget_exchange(exchange)
                        self._unroutable = f"no queue bound to exchange {exchange!r} matches routing key {key!r}"
                    else:
                        self._queues.forget(key)
                    retry.append(start + index)
                else:
                    retry.append(start + index)
        return sorted(retry), refused

    # -- consuming ---------------------------------------------------------------------------
    def fetch(self, queues: Sequence[str], max_count: int, timeout: float) -> list[Delivery]:
        deadline = time.monotonic() + timeout
        link, claims = self._session()
        for queue in queues:
            self._queues.ensure_queue(link, queue)
        try:
            # Room for the batch being run, its acks in flight and the next batch arriving.
            base = self.prefetch if self.prefetch is not None else _PREFETCH_FACTOR * max_count
            claims.ensure_consumers(queues, max_count, max(1, base))
        except ChannelClosed as exc:
            if exc.reply_code == 404:  # a queue was deleted under us: declare it again next time
                for queue in queues:
                    self._queues.forget(queue)
            raise
        out: list[Delivery] = []
        while len(out) < max_count:
            wait = 0.0 if out else max(0.0, deadline - time.monotonic())
            taken = claims.take(queues, max_count - len(out), wait)
            if not taken:
                if not link.alive and not out:
                    raise BrokerError(f"connection to RabbitMQ lost: {link.closed_reason}")
                if out or time.monotonic() >= deadline:
                    break
            for claim in taken:
                delivery = self._delivery(claim)
                if delivery is not None:
                    out.append(delivery)
        return out

    def _delivery(self, claim: Claim) -> Delivery | None:
        why = undecodable_reason(claim.properties)
        if why is not None:  # the worker dead-letters it (decode.py)
            return Delivery(None, claim.queue, claim, int(claim.redelivered), raw=claim.body, error=why)
        try:
            envelope, added = from_amqp(claim.properties, claim.body)
        except Exception as exc:  # one bad message must not fail the fetch
            return undecodable(bytes(claim.body), claim.queue, claim, int(claim.redelivered), exc)
        eta_ms = added.get(ETA_HEADER)
        if isinstance(eta_ms, int) and delay_level(eta_ms / 1000 - time.time()) is not None:
            self._delay_again(claim, envelope, eta_ms / 1000)  # arrived early from a long level
            return None
        count = added.get(DELIVERY_COUNT_HEADER)  # quorum queues count for themselves
        redeliveries = int(count) if isinstance(count, int) else int(claim.redelivered)
        return Delivery(envelope, claim.queue, claim, redeliveries)

    def _delay_again(self, claim: Claim, envelope: Envelope, eta: float) -> None:
        try:
            self._publish(lambda link: [self._route(link, Publication(claim.queue, envelope, eta), False)])
        except BrokerError:
            claim.link.post(lambda: claim.link.nack_consumed_now([claim.delivery_tag]))
            raise
        self._settle([claim])

    def _claims_of(self, deliveries: Sequence[Delivery]) -> list[Claim]:
        return [d.tag for d in deliveries if isinstance(d.tag, Claim)]

    def _settle(self, claims: list[Claim], requeue: bool = False) -> None:
        current = self._claims
        if current is None:
            if claims:
                log.warning("%d delivery(ies) settled after close; RabbitMQ returned them already", len(claims))
            return
        current.settle(claims, requeue)

    def ack(self, deliveries: Sequence[Delivery]) -> None:
        self._settle(self._claims_of(deliveries))

    def requeue(self, deliveries: Sequence[Delivery]) -> None:
        """Publish copies (confirmed) and ack the originals: a nack would mark them redelivered.

        Returns once RabbitMQ has processed those acks, not when they are merely queued for
        the I/O thread: a process killed after this returns (the prefork supervisor's hard
        time limit) must not have its originals come back beside their copies, each to run."""
        live = [d for d in deliveries if isinstance(d.tag, Claim) and not d.tag.settled]
        if any(d.envelope is None for d in live):  # no copy of what cannot be decoded: nack it
            self._settle([d.tag for d in live if d.envelope is None], requeue=True)
            live = [d for d in live if d.envelope is not None]
        if not live:
            return
        try:
            self._publish(lambda link: [self._copy(link, d.tag, d.queue) for d in live])
        except BrokerError as exc:
            log.warning("Could not republish %d message(s) (%s); returning them with nack", len(live), exc)
            self._settle([d.tag for d in live], requeue=True)
            return
        originals = self._claims_of(live)
        self._settle(originals)
        link = originals[0].link
        if link is self._link:  # else the originals' connection is gone: RabbitMQ returned them already
            link.sync_consumed()

    def _copy(self, link: Link, claim: Claim, queue: str) -> Outgoing:
        envelope, _added = from_amqp(claim.properties, claim.body)
        return self._route(link, Publication(queue, envelope), check_priority=False)

    def dead_letter(self, delivery: Delivery, reason: str) -> None:
        claim = delivery.tag
        if not isinstance(claim, Claim):
            raise BrokerError(f"not a RabbitMQ delivery: {delivery!r}")
        extra = {REASON_HEADER: reason, FAILED_AT_HEADER: int(time.time() * 1000), ORIGIN_HEADER: delivery.queue}
        dead = dead_queue(delivery.queue)
        correlation_id = claim.properties.correlation_id
        bare = pika.BasicProperties(  # the body, the reason, the id: what any message can carry
            headers=extra, delivery_mode=2, correlation_id=correlation_id if isinstance(correlation_id, str) else None
        )

        def build(properties: pika.BasicProperties) -> Callable[[Link], list[Outgoing]]:
            def outgoing(link: Link) -> list[Outgoing]:
                self._queues.ensure_dead_queue(link, delivery.queue)
                return [("", dead, properties, bytes(claim.body))]

            return outgoing

        try:  # a stand-in for undecodable headers (decode.py) converts too, keeping what it holds
            properties = to_amqp(from_amqp(claim.properties, claim.body)[0], extra)
        except Exception:  # no envelope can be read from it at all
            properties = bare
        try:
            self._publish(build(properties))
        except Unencodable:  # headers AMQP cannot carry again
            self._publish(build(bare))
        self._settle([claim])

    def extend(self, deliveries: Sequence[Delivery]) -> None:
        # Claims live as long as the channel; the I/O thread keeps heartbeats going. This only
        # keeps them from expiring here (claims.py).
        if self._claims is not None:
            self._claims.extend(self._claims_of(deliveries))

    # -- inspection and cleanup ---------------------------------------------------------------
    def queue_length(self, queue: str) -> int:
        check_queue_name(queue)  # before any I/O: RabbitMQ would answer by closing the channel
        link, claims = self._session()
        names = [queue] + [delay_queue(queue, level) for level in range(MAX_DELAY_LEVEL + 1)]
        return claims.counts(queue) + sum(self._queues.ready_count(link, name) for name in names)

    def queues(self) -> list[str]:
        link, claims = self._session()
        known = {*self._queues.work_queues(), self.settings.task_default_queue, *self.settings.queue_arguments}
        count = partial(self._queues.ready_count, link)
        return sorted(q for q in known if claims.counts(q) or count(q) or count(dead_queue(q)))

    def purge(self, queue: str) -> int:
        check_queue_name(queue)  # before any I/O: RabbitMQ would answer by closing the channel
        link, claims = self._session()
        waiting = claims.waiting(queue)
        claims.settle(waiting)
        total = len(waiting)
        for name in [queue] + [delay_queue(queue, level) for level in range(MAX_DELAY_LEVEL + 1)]:
            if name == queue or self._queues.ready_count(link, name):
                total += self._queues.purge_if_exists(link, name)
        return total

    def dead_letters(self, queue: str | None = None, limit: int = 100) -> list[DeadLetter]:
        out: list[DeadLetter] = []
        with self._sweep_lock:
            for name in [queue] if queue else self.queues():
                link, _ = self._session()
                taken = sweep(link, dead_queue(name), limit - len(out))
                try:
                    out += [dead_letter_of(name, props, body) for _tag, props, body in taken]
                finally:
                    link.settle_swept([], [tag for tag, _p, _b in taken])
                if len(out) >= limit:
                    break
        return out

    def dead_letter_count(self, queue: str) -> int:
        """Ready messages of ``<queue>.dead`` by a passive declare: none is taken or moved."""
        link, _ = self._session()
        return self._queues.ready_count(link, dead_queue(queue))

    def requeue_dead_letters(self, queue: str | None = None, ids: Sequence[str] = ()) -> int:
        wanted = set(ids)
        moved = 0
        with self._sweep_lock:
            for name in [queue] if queue else self.queues():
                link, _ = self._session()
                taken = sweep(link, dead_queue(name), None)
                letters = [(tag, dead_letter_of(name, props, body), props, body) for tag, props, body in taken]
                chosen = [item for item in letters if not wanted or item[1].id in wanted]
                chosen_tags = {item[0] for item in chosen}
                kept = [item[0] for item in letters if item[0] not in chosen_tags]
                try:
                    self._publish(partial(self._revive_all, name, [(props, body) for _t, _l, props, body in chosen]))
                except BrokerError:
                    link.settle_swept([], [tag for tag, _p, _b in taken])
                    raise
                link.settle_swept([item[0] for item in chosen], kept)
                moved += len(chosen)
        return moved

    def _revive_all(self, queue: str, letters: list[tuple[pika.BasicProperties, bytes]], link: Link) -> list[Outgoing]:
        return [self._revive(link, queue, properties, body) for properties, body in letters]

    def _revive(self, link: Link, queue: str, properties: pika.BasicProperties, body: bytes) -> Outgoing:
        envelope, added = from_amqp(properties, body)
        origin = str(added.get(ORIGIN_HEADER) or (properties.headers or {}).get("x-first-death-queue") or queue)
        return self._route(link, Publication(origin, envelope), check_priority=False)

    def purge_dead_letters(self, queue: str | None = None) -> int:
        link, _ = self._session()
        return sum(
            self._queues.purge_if_exists(link, dead_queue(name)) for name in ([queue] if queue else self.queues())
        )

    def declared_queues(self) -> list[str]:
        """Every queue this instance declared or adopted (for tools and test cleanup)."""
        return self._queues.names()

    def close(self) -> None:
        with self._lock:
            if current_pid() != self._pid:
                self._pid, self._link, self._claims = current_pid(), None, None
                return
            link, claims = self._link, self._claims
        if link is not None and claims is not None and link.alive:
            self._give_back_waiting(link, claims)
        with self._lock:
            self._link, self._claims = None, None
        if link is not None:
            link.close()

    def release_pushed(self) -> int:
        """What RabbitMQ pushed ahead to a process whose every fetcher is busy (a long task)
        goes back for other workers; the next fetch consumes again."""
        with self._lock:
            link, claims = (self._link, self._claims) if current_pid() == self._pid else (None, None)
        if link is None or claims is None or not link.alive or claims.taking:
            return 0
        return self._give_back_waiting(link, claims)

    def _give_back_waiting(self, link: Link, claims: Claims) -> int:
        """Deliveries never handed out go back unmarked (a copy, then an ack), not redelivered;
        returns how many.

        The consumers stop first: otherwise RabbitMQ would push the copies straight back here.
        """
        try:
            claims.stop_consuming()
        except BrokerError as exc:
            log.debug("Could not cancel the consumers: %s", exc)
            return 0
        waiting = claims.waiting()
        if not waiting:
            return 0
        try:
            if self._send(link, [self._copy(link, claim, claim.queue) for claim in waiting]) == ([], []):
                claims.settle(waiting)
                log.info("Returned %d prefetched message(s) to their queue(s)", len(waiting))
                return len(waiting)
        except BrokerError as exc:  # closing the channel returns them anyway, marked redelivered
            log.debug("Could not hand back %d prefetched message(s): %s", len(waiting), exc)
        return 0


def connection_parameters(url: str) -> pika.URLParameters:
    """pika's parameters for an amqp:// URL, reading the vhost as Celery and kombu do.

    ``amqp://host//`` is the vhost "/" (pika alone would read ""), ``amqp://host/x`` is "x",
    and ``amqp://host`` or ``amqp://host/`` the default "/".
    """
    try:
        params = pika.URLParameters(url)
    except Exception as exc:
        raise ConfigurationError(f"broker URL {redact(url)!r} is invalid: {scrub(str(exc), url)}") from None
    path = urlsplit(url).path
    params.virtual_host = unquote(path[1:]) if len(path) > 1 else "/"
    return params
