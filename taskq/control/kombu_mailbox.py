"""Remote control through kombu's own pidbox, configured as Celery's ``app.control`` is.

Exchange ``celery.pidbox`` (fanout, transient, not durable); each worker consumes its own
exclusive queue ``<hostname>.celery.pidbox`` (messages live 300 s, the queue 10 s after
its worker goes); replies go to the direct exchange ``reply.celery.pidbox`` with the
client's routing key and the request's ticket. On Redis kombu maps these to PUBLISH on
``/{db}.celery.pidbox`` and a list per reply queue. Celery's ``celery inspect`` and
``app.control`` therefore reach taskq workers, and taskq's clients reach Celery workers.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

import kombu.pidbox
from kombu.exceptions import InconsistencyError

from taskq.control.mailbox import ControlRequest, NodeNameTaken, parse_request
from taskq.errors import BrokerError
from taskq.sidechannel import kombu_connection

if TYPE_CHECKING:
    from taskq.config import Settings

# kombu is only partly annotated (mypy --strict rejects its untyped calls): its objects are Any here.
Mailbox: Any = kombu.pidbox.Mailbox

log = logging.getLogger("taskq.control")
NAMESPACE = "celery"  # Celery's control_exchange default
NAME_CHECK_TIMEOUT = 0.5  # Redis cannot tell who listens: a ping to the name decides


def celery_mailbox() -> Any:
    """The Mailbox exactly as celery/app/control.py builds it with Celery's defaults."""
    return Mailbox(
        NAMESPACE, type="fanout", accept=["json"], serializer="json", queue_ttl=300.0, reply_queue_ttl=300.0,
        queue_expires=10.0, queue_exclusive=True, queue_durable=False, reply_queue_expires=10.0,
    )


class KombuMailbox:
    def __init__(self, conf: Settings) -> None:
        self.conf = conf
        self._conn: Any = None

    def _bound(self) -> Any:
        if self._conn is None:
            self._conn = kombu_connection(self.conf)
        return celery_mailbox()(self._conn)

    def call(
        self, method: str, arguments: dict[str, Any], destination: list[str] | None, timeout: float,
        limit: int | None = None,
    ) -> list[dict[str, Any]]:
        try:
            box = self._bound()
            if destination:
                replies = box.call(destination, method, arguments, timeout=timeout)
            else:
                replies = box.multi_call(method, arguments, timeout=timeout, limit=limit)
        except Exception as exc:
            raise BrokerError(f"remote control failed: {exc}") from None
        return [r for r in replies or [] if isinstance(r, dict)]

    def cast(self, method: str, arguments: dict[str, Any], destination: list[str] | None) -> None:
        try:
            box = self._bound()
            if destination:
                box.cast(destination, method, arguments)
            else:
                box.abcast(method, arguments)
        except Exception as exc:
            raise BrokerError(f"remote control failed: {exc}") from None

    def name_in_use(self, hostname: str) -> bool:
        box = self._bound()
        if self._conn.transport.driver_type == "amqp":
            # The node's queue is exclusive: a live worker of that name is its consumer.
            queue = box.get_queue(hostname)
            try:
                _, _, consumers = queue(self._conn.channel()).queue_declare(passive=True)
            except self._conn.channel_errors as exc:
                # 405 RESOURCE_LOCKED: another connection holds the exclusive queue (a live
                # worker of that name); 404: no such queue, nobody holds the name.
                self._conn.release()
                self._conn = None
                return getattr(exc, "code", getattr(exc, "reply_code", 0)) == 405
            return bool(consumers)
        return bool(self.call("ping", {}, [hostname], NAME_CHECK_TIMEOUT))

    def node(self, hostname: str) -> KombuNode:
        try:
            return KombuNode(self.conf, hostname)
        except InconsistencyError:
            raise NodeNameTaken(hostname) from None

    def close(self) -> None:
        if self._conn is not None:
            self._conn.release()
            self._conn = None


class KombuNode:
    def __init__(self, conf: Settings, hostname: str) -> None:
        self._conn = kombu_connection(conf)
        self._channel = self._conn.channel()
        self._node = celery_mailbox()(self._conn).Node(hostname, channel=self._channel)
        self._inbox: list[ControlRequest | str] = []
        consumer = self._node.Consumer(channel=self._channel, callbacks=[self._on_message])
        consumer.on_decode_error = self._on_decode_error
        consumer.consume()
        self._consumer = consumer
        # kombu's Redis transport subscribes on the first drain: do it now, so the node
        # listens when it is made (a request published before would be lost on pub/sub).
        try:
            self._conn.drain_events(timeout=0.05)
        except TimeoutError:
            pass

    def _on_message(self, body: Any, message: Any) -> None:
        headers = dict(message.headers or {})
        self._node.adjust_clock(_int(headers.get("clock")))
        self._inbox.append(parse_request(body, headers))

    def _on_decode_error(self, message: Any, exc: Exception) -> None:
        self._inbox.append(f"undecodable ({message.content_type}): {exc}")

    def poll(self, timeout: float) -> list[ControlRequest | str]:
        if not self._inbox:
            try:
                self._conn.drain_events(timeout=timeout)
            except TimeoutError:
                pass
        items, self._inbox = self._inbox, []
        return items

    def reply(self, request: ControlRequest, hostname: str, result: Any) -> None:
        if request.reply_to is None:
            return
        self._node.reply(
            {hostname: result}, exchange=request.reply_to.get("exchange") or "reply.celery.pidbox",
            routing_key=request.reply_to["routing_key"], ticket=request.ticket,
        )

    def close(self) -> None:
        try:
            self._consumer.cancel()
        except Exception:
            log.debug("cancelling the control consumer failed", exc_info=True)
        self._conn.release()


def _int(value: Any) -> int:
    try:
        return int(value or 0)
    except (TypeError, ValueError):
        return 0
