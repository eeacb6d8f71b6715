"""The worker's control side: answers remote control and sends worker-* events.

Where it runs depends on where tasks run. A prefork pool's supervisor runs none, so on
plain Redis and RabbitMQ (no TLS) it serves from a thread there, started before the first
children are forked (so they share kombu's pages and the thread's few objects instead of
the supervisor copying them). Every other pool runs tasks in the worker's own process, where
a task that holds the GIL would stop heartbeats and ``inspect``; and on SQLite, PostgreSQL
or TLS a thread beside the forks could hand a child a C library's lock held (see
``in_thread``). There it is a control process, forked before the consumers start (as the
claim keeper is), which dies with the worker (PR_SET_PDEATHSIG) and, asked to stop (SIGTERM
from the pool at its end), sends worker-offline and leaves its mailbox. Either reads what
the consumers do from SharedStats. The memory broker lives in one process: a thread serves
it, whatever the pool.

A malformed request, or with signing on an unsigned or forged one, is dropped with a log
line; a failing command is answered with ``{"error": ...}``; neither stops the worker.
"""

from __future__ import annotations

import logging
import os
import select
import signal
import threading
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from taskq.config import url_scheme
from taskq.control import handlers, signing
from taskq.control.handlers import WorkerInfo
from taskq.control.mailbox import ControlRequest, MailboxNode, NodeNameTaken, create_mailbox
from taskq.control.stats import SharedStats
from taskq.control.steering import Steering
from taskq.display import OneLineRecords
from taskq.events.dispatcher import EventDispatcher
from taskq.events.task_events import TaskEvents
from taskq.sidechannel import SUPERVISOR_SKIPS, family, import_kombu_lean, serializers_on_first_use
from taskq.worker.keeper import FORK_GUARD, die_with_parent, fork_sharing

if TYPE_CHECKING:
    from taskq.app import TaskQ
    from taskq.metrics import WorkerMetrics

log = logging.getLogger("taskq.control")
log.addFilter(OneLineRecords())  # method names come from the network
RETRY_OPEN = 2.0  # seconds between attempts to open the mailbox while the broker is down
LISTEN_WAIT = 10.0  # seconds the worker waits at start for its mailbox to listen


def close_now(fd: int) -> None:
    """Close a pipe end at once. Under -P gevent, ``os.close`` of a pipe is deferred to the
    hub's next turn, which the parent's select() below would wait out before seeing EOF."""
    os.closerange(fd, fd + 1)


class Monitor:
    """Everything the worker needs for control and events: made in the pool's process."""

    def __init__(
        self, app: TaskQ, hostname: str, queues: Sequence[str], pool: str, concurrency: int, prefetch: int,
        metrics: WorkerMetrics | None = None,
    ) -> None:
        self.app = app
        self.hostname = hostname
        self.steering = Steering(concurrency, list(queues))  # what remote control changes in the pool
        # A record per consumer the pool may grow to, and room for restarted children.
        self.stats = SharedStats(self.steering.ceiling + max(concurrency, 1) + 2)
        self.info = WorkerInfo(app, hostname, list(queues), pool, concurrency, prefetch, self.stats, self.steering)
        self.events = EventDispatcher(app.conf, hostname)
        self.info.clock = lambda: self.events.clock.value
        self.task_events = TaskEvents(self.events) if app.conf.worker_send_task_events else None
        self.metrics = metrics
        self.pid: int | None = None
        self._stop = threading.Event()
        self._stopped = threading.Event()
        # One process fewer (about 10 MB of PSS, docs/performance.md "Idle memory") where the
        # process runs no task: prefork's supervisor on plain Redis or RabbitMQ, or the memory
        # broker's single process. Not where the thread's I/O runs in a C library with
        # process-wide locks (SQLite's VFS mutex, libpq, OpenSSL for rediss/amqps): a fork
        # while the thread holds one leaves it held for good in the child (measured on
        # SQLite: children stuck in sqlite3.connect).
        scheme = url_scheme(app.conf.broker_url)
        self.in_thread = scheme == "memory" or (pool == "prefork" and scheme in ("redis", "amqp"))
        self._listening = threading.Event()
        self._listen_pipe: int | None = None

    def start(self) -> None:
        """Connect the receivers the consumers need, then start the control thread or fork
        the control process."""
        if self.task_events is not None:
            self.task_events.install()
        if self.metrics is not None:
            self.metrics.install()
        self.info.worker_pid = os.getpid()
        if self.in_thread:
            # Before the pool forks: its children share these pages (and the few objects the
            # thread makes while it opens the mailbox) instead of a copy the supervisor writes.
            if family(self.app.conf.broker_url) == "kombu":
                serializers_on_first_use(import_kombu_lean(SUPERVISOR_SKIPS))
            # The events bus's module is imported here too, not by the sender thread while
            # the pool forks: a fork in the middle of an import leaves that module's import
            # lock held in the child. (The mailbox's is imported before the thread listens.)
            self.events.bus()
            threading.Thread(target=self.serve, name="taskq-control", daemon=True).start()
            self._listening.wait(LISTEN_WAIT)
            return
        # The worker says "ready" once its mailbox listens: on Redis pub/sub a request sent
        # before the subscription would be lost.
        read_end, self._listen_pipe = os.pipe()
        pid = fork_sharing()
        if pid:
            self.pid = pid
            close_now(self._listen_pipe)
            if not select.select([read_end], [], [], LISTEN_WAIT)[0]:
                log.warning("Remote control is not listening yet; the worker starts without waiting for it")
            close_now(read_end)
            return
        close_now(read_end)
        code = 0
        try:
            die_with_parent()
            for sig in (signal.SIGINT, signal.SIGQUIT):
                signal.signal(sig, signal.SIG_IGN)  # the pool decides; it stops us with SIGTERM
            signal.signal(signal.SIGTERM, lambda s, f: self._stop.set())
            self.serve()
        except BaseException:
            log.exception("The control process failed")
            code = 1
        finally:
            os._exit(code)

    def stop(self, timeout: float = 5.0) -> None:
        """Ask the control process to send worker-offline and end; kill it after ``timeout``."""
        if self.task_events is not None:
            self.task_events.uninstall()
            self.events.flush()  # task events of a solo/threads pool, queued in this process
        if self.metrics is not None:
            self.metrics.uninstall()
        if self.in_thread:
            self._stop.set()
            self._stopped.wait(timeout)
            return
        if self.pid is None:
            return
        try:
            os.kill(self.pid, signal.SIGTERM)
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline:
                if os.waitpid(self.pid, os.WNOHANG)[0]:
                    break
                time.sleep(0.02)
            else:
                os.kill(self.pid, signal.SIGKILL)
                os.waitpid(self.pid, 0)
        except (ProcessLookupError, ChildProcessError):
            pass
        self.pid = None

    # -- the control process --------------------------------------------------------------
    def serve(self) -> None:
        if not self.in_thread and family(self.app.conf.broker_url) == "kombu":
            import_kombu_lean()  # before the metrics' thread: no import of an extra races with it
        if self.metrics is not None:
            try:
                self.metrics.serve(self.stats, lambda: self.info.queues)
            except OSError as exc:
                log.error("Metrics not served: %s", exc)
        node = self._open_node()
        self._tell_listening()
        if node is None:
            self._stopped.set()
            return
        interval = self.app.conf.worker_event_heartbeat
        self._send_worker_event("worker-online", interval)
        next_beat = time.monotonic() + interval if interval > 0 else float("inf")  # 0: --without-heartbeat
        try:
            while not self._stop.is_set() and (self.in_thread or os.getppid() == self.info.worker_pid):
                for item in node.poll(max(min(next_beat - time.monotonic(), 0.5), 0.0)):
                    self._handle(node, item)
                if time.monotonic() >= next_beat:
                    next_beat = time.monotonic() + interval if interval > 0 else float("inf")  # 0: --without-heartbeat
                    self._send_worker_event("worker-heartbeat", interval)
        finally:
            self._send_worker_event("worker-offline", interval)
            try:
                node.close()
            finally:
                self.events.close()
                self._stopped.set()

    def _tell_listening(self) -> None:
        self._listening.set()
        if self._listen_pipe is not None:
            close_now(self._listen_pipe)  # the parent's select() wakes on end of file
            self._listen_pipe = None

    def _open_node(self) -> MailboxNode | None:
        while not self._stop.is_set():
            try:
                return create_mailbox(self.app.conf).node(self.hostname)
            except NodeNameTaken:  # RabbitMQ: another worker holds this name's queue
                log.error("Remote control off: another worker already uses the name %s", self.hostname)
                return None
            except Exception as exc:
                self._tell_listening()  # the worker need not wait for a broker that is down
                log.warning("Remote control unavailable (%s); retrying in %.0fs", exc, RETRY_OPEN)
                self._stop.wait(RETRY_OPEN)
        return None

    def _send_worker_event(self, type_: str, interval: float) -> None:
        fields: dict[str, Any] = {"freq": interval, **handlers.SOFTWARE}
        if type_ == "worker-heartbeat":
            fields.update(
                active=len(self.stats.active()), processed=self.stats.processed(), loadavg=_loadavg(),
                pool=self.info.pool, concurrency=self.info.concurrency,
            )
        self.events.send(type_, **fields)

    def _handle(self, node: MailboxNode, item: ControlRequest | str) -> None:
        if isinstance(item, str):
            log.warning("Dropped a malformed control message: %s", item)
            return
        if not item.for_node(self.hostname):
            return
        self.events.clock.adjust(item.clock)
        arguments: dict[str, Any] | None = item.arguments
        conf = self.app.conf
        if conf.signing_key:
            arguments, why = signing.verify(
                conf.signing_key, conf.signing_max_age, item.method, item.arguments, item.destination
            )
            if arguments is None:
                log.warning("Dropped a control message %r: %s", item.method, why)
                return
        log.debug("Control command %s%r", item.method, arguments)
        try:
            with FORK_GUARD:
                result = handlers.handle(self.info, item.method, arguments or {})
        except Exception as exc:
            log.exception("Control command %s failed", item.method)
            result = {"error": repr(exc)}
        try:
            node.reply(item, self.hostname, result)
        except Exception as exc:
            log.warning("Could not reply to %s (%s)", item.method, exc)


def _loadavg() -> list[float]:
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except OSError:
        return [0.0, 0.0, 0.0]
