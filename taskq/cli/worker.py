"""``taskq worker``: start a pool of consumers."""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from typing import TYPE_CHECKING

import click

from taskq import signals
from taskq.app import TaskQ
from taskq.cli.celery_flags import WORKER_CELERY_ONLY, celery_only_options
from taskq.cli.common import CommandError, app_option, app_spec_given, load_app, setup_logging, split_queues
from taskq.control.mailbox import create_mailbox
from taskq.control.monitor import Monitor
from taskq.control.nodename import nodename
from taskq.display import redact
from taskq.errors import TaskQError
from taskq.sidechannel import family
from taskq.worker.heartbeat import dead_consumers, heartbeat_age
from taskq.worker.ratelimit import check_app as check_rates
from taskq.worker.timelimits import app_limits

if TYPE_CHECKING:
    from taskq.dashboard.server import Options
    from taskq.metrics import WorkerMetrics

log = logging.getLogger("taskq.worker")
POOLS = ("prefork", "threads", "solo", "asyncio", "gevent")
POOL_ALIASES = {"processes": "prefork"}  # Celery's other name
REFUSED_POOLS = {"eventlet": "use -P gevent, -P threads or -P asyncio", "custom": "pools cannot be replaced"}
LOG_LEVELS = ("debug", "info", "warning", "error", "critical", "fatal")


def check_servers(app: TaskQ, queues: list[str]) -> None:
    """Fail fast, with one line, when the broker or backend cannot be reached."""
    try:
        for queue in queues:  # a name the broker refuses fails here, not in an endless retry
            app.broker.queue_length(queue)
        if app.backend is not None:
            app.backend.get_meta("taskq-startup-check")
    except TaskQError as exc:
        raise CommandError(str(exc)) from None
    finally:
        app.close()  # children (prefork) open their own connections


@click.command()
@app_option
@click.option("-Q", "--queues", default=None, help="Comma-separated queues to consume (default: task_queues)")
@click.option("-c", "--concurrency", type=click.IntRange(1, 1024), default=None, help="Pool size (default: CPUs)")
@click.option(
    "-P", "--pool", type=click.Choice(POOLS + tuple(POOL_ALIASES) + tuple(REFUSED_POOLS)),
    default=None, help="Pool (default prefork; processes is prefork)",
)
@click.option("-l", "--loglevel", default="info", type=click.Choice(LOG_LEVELS, case_sensitive=False))
@click.option("--prefetch-multiplier", type=click.IntRange(1, 1000), default=None, help="Messages claimed per slot")
@click.option("-B", "--beat", "with_beat", is_flag=True, help="Also run beat (several --beat workers elect one leader)")
@click.option("--max-tasks-per-child", type=click.IntRange(1), default=None,
              help="Prefork: replace a child after this many tasks (worker_max_tasks_per_child)")
@click.option("--max-memory-per-child", type=click.IntRange(1), default=None,
              help="Prefork: replace a child once its resident memory passes this many KiB")
@click.option("--outbox", "with_outbox", is_flag=True, help="Also relay the outbox (outbox_url) to the broker")
@click.option("--check", is_flag=True, help="Health check: exit 0 if this host's worker heartbeat is fresh, else 1")
@click.option("--max-age", type=float, default=60.0, help="With --check: the oldest heartbeat that counts as fresh")
@click.option("-n", "--hostname", default=None, help="Node name (%h, %n, %d expand; default taskq@<host>)")
@click.option("-E", "--task-events", "--events", is_flag=True, help="Send task-* events (worker_send_task_events)")
@click.option("-f", "--logfile", default=None, help="Append the log to this file (default: stderr)")
@click.option("--time-limit", type=click.FloatRange(0, min_open=True), default=None, help="Hard time limit per task, s")
@click.option("--soft-time-limit", type=click.FloatRange(0, min_open=True), default=None, help="Soft time limit, s")
@click.option("--purge", "--discard", "purge", is_flag=True, help="Delete the waiting messages of the queues first")
@click.option("-I", "--include", default=None, help="Comma-separated task modules to import (as include=)")
@click.option("--without-heartbeat", is_flag=True, help="Send no worker-heartbeat events")
@click.option("--heartbeat-interval", type=click.FloatRange(0, min_open=True), default=None,
              help="Seconds between worker-heartbeat events (worker_event_heartbeat)")
@click.option("--without-gossip", is_flag=True, help="Accepted: taskq workers do not gossip")
@click.option("--without-mingle", is_flag=True, help="Accepted: taskq workers do not mingle at start")
@click.option("-O", "--optimization", type=click.Choice(["fair", "default"]), default=None,
              help="Accepted: each slot fetches for itself, which is Celery's -O fair")
@celery_only_options(WORKER_CELERY_ONLY)
@click.option("--log-format", type=click.Choice(["text", "json"]), default="text", help="json: one object a line")
@click.option("--metrics-port", type=click.IntRange(1, 65535), default=None, help="Serve Prometheus /metrics here")
@click.option("--dashboard", "with_dashboard", is_flag=True, help="Also serve the web dashboard (docs/dashboard.md)")
@click.option("--dashboard-port", type=click.IntRange(1, 65535), default=5555, show_default=True,
              envvar="TASKQ_DASHBOARD_PORT")
@click.option("--dashboard-bind", default="127.0.0.1", show_default=True, envvar="TASKQ_DASHBOARD_BIND",
              help="Other than loopback it needs TASKQ_DASHBOARD_AUTH (user:password) or TASKQ_DASHBOARD_TOKEN")
def worker(
    app_spec: str | None,
    queues: str | None,
    concurrency: int | None,
    pool: str | None,
    loglevel: str,
    prefetch_multiplier: int | None,
    with_beat: bool,
    max_tasks_per_child: int | None,
    max_memory_per_child: int | None,
    with_outbox: bool,
    check: bool,
    max_age: float,
    hostname: str | None,
    task_events: bool,
    metrics_port: int | None,
    logfile: str | None,
    log_format: str,
    with_dashboard: bool,
    dashboard_port: int,
    dashboard_bind: str,
    time_limit: float | None,
    soft_time_limit: float | None,
    purge: bool,
    include: str | None,
    without_heartbeat: bool,
    heartbeat_interval: float | None,
    without_gossip: bool,
    without_mingle: bool,
    optimization: str | None,
) -> None:
    """Run a worker that consumes and runs tasks."""
    setup_logging("critical" if loglevel.lower() == "fatal" else loglevel, logfile, log_format)
    if pool in REFUSED_POOLS:
        raise CommandError(f"-P {pool} is not supported: {REFUSED_POOLS[pool]}")
    pool = POOL_ALIASES.get(pool or "", pool)
    try:
        app = load_app(app_spec)
        if not check:  # a health check names no node: it only reads this host's heartbeat
            prepare_node(app, hostname, task_events)
            apply_celery_flags(app, time_limit, soft_time_limit, include, without_heartbeat, heartbeat_interval)
        conf = app.finalize()
        app_limits(conf)  # a bad task_time_limit is one line here, not an error per task
        check_rates(app)
    except TaskQError as exc:
        raise CommandError(str(exc)) from None
    if check:
        age = heartbeat_age(conf.heartbeat_path)
        fresh = age is not None and age <= max_age
        click.echo(f"worker heartbeat {conf.heartbeat_path}: " + ("none" if age is None else f"{age:.1f}s old"))
        dead = dead_consumers(conf.heartbeat_path)
        for line in dead:
            click.echo(f"dead consumer: {line}")
        raise SystemExit(0 if fresh and not dead else 1)
    queue_list = split_queues(queues, app)
    size = concurrency or conf.worker_concurrency
    pool_name = pool or conf.worker_pool
    if pool_name not in POOLS:  # worker_pool from app.conf or TASKQ_WORKER_POOL
        raise CommandError(f"unknown pool {pool_name!r} (worker_pool): use one of {', '.join(POOLS)}")
    if pool_name == "gevent":
        check_gevent()
    if pool_name == "prefork" and conf.broker_url.startswith("memory://"):
        raise CommandError("the memory:// broker lives in one process: use -P threads or -P solo with it")
    recycle = (
        max_tasks_per_child or conf.worker_max_tasks_per_child,
        max_memory_per_child or conf.worker_max_memory_per_child,
    )
    if any(recycle) and pool_name != "prefork":
        raise CommandError("--max-tasks-per-child and --max-memory-per-child recycle child processes: use -P prefork")
    if with_outbox and not conf.outbox_url:
        raise CommandError("--outbox: the app has no outbox_url (TASKQ_OUTBOX_URL): nothing to relay from")
    dashboard_options = check_dashboard(dashboard_port, dashboard_bind) if with_dashboard else None
    check_servers(app, queue_list)
    if purge:
        purge_queues(app, queue_list)
    node = conf.worker_hostname or ""
    check_name_free(app, node)
    prefetch = prefetch_multiplier or conf.worker_prefetch_multiplier

    def ready() -> None:  # logged once the signal handlers are in place
        log.info(
            "taskq worker %s ready: broker=%s queues=%s pool=%s concurrency=%d tasks=%s",
            node, redact(conf.broker_url), ",".join(queue_list), pool_name, size,
            ",".join(sorted(app.tasks)),
        )
        if signals.worker_ready.receivers:
            signals.worker_ready.send(sender=node)

    metrics = worker_metrics(app, node, queue_list, metrics_port) if metrics_port else None
    stop_dashboard = None
    if dashboard_options is not None:
        from taskq.dashboard.server import start_beside_worker

        spec = app_spec_given(app_spec)
        if spec is None:  # app.worker_main(): no module path a dashboard process could load
            raise CommandError("--dashboard needs the app as -A module:app (run `taskq dashboard` beside it)")
        stop_dashboard = start_beside_worker(app, spec, dashboard_options)
    monitor = Monitor(app, node, queue_list, pool_name, size, prefetch, metrics)
    monitor.start()  # before the pool forks children or starts threads
    try:
        code = run_pool(app, queue_list, pool_name, size, prefetch, ready, with_beat, with_outbox, recycle, monitor)
    finally:
        if stop_dashboard is not None:
            stop_dashboard()
        monitor.stop()
        if metrics is not None:
            metrics.cleanup()
        if signals.worker_shutdown.receivers:
            signals.worker_shutdown.send(sender=node)
    log.info("taskq worker stopped")
    raise SystemExit(code)


def run_pool(
    app: TaskQ, queue_list: list[str], pool_name: str, size: int, prefetch: int, ready: Callable[[], None],
    with_beat: bool, with_outbox: bool, recycle: tuple[int, int], monitor: Monitor,
) -> int:
    steering, stats = monitor.steering, monitor.stats  # remote control's pool_grow, reserved...
    if pool_name == "prefork":
        from taskq.worker.supervisor import PreforkPool

        code = PreforkPool(
            app, queue_list, size, prefetch, beat=with_beat, recycle=recycle, outbox=with_outbox, steering=steering,
            stats=stats,
        ).run(ready)
    else:
        scheduler = None
        if with_beat:
            from taskq.beat.schedulers.background import start_embedded

            scheduler = start_embedded(app)
        stop_relay = None
        if with_outbox:
            from taskq.transactional import start_relay_thread

            stop_relay = start_relay_thread(app)
        try:
            if pool_name == "asyncio":
                from taskq.worker.asyncio_pool import AsyncioPool  # here: asyncio is 20 ms of a solo worker's start

                code = AsyncioPool(app, queue_list, size, steering=steering, stats=stats).run(ready)
            elif pool_name == "gevent":
                from taskq.worker.gevent_pool import GeventPool

                code = GeventPool(app, queue_list, size, steering=steering, stats=stats).run(ready)
            else:
                from taskq.worker.pools import ThreadPool

                solo = pool_name == "solo"
                code = ThreadPool(
                    app, queue_list, 1 if solo else size, prefetch, solo=solo, steering=steering, stats=stats
                ).run(ready)
        finally:
            if stop_relay is not None:
                stop_relay()
            if scheduler is not None and scheduler.running:
                scheduler.shutdown()
            app.close()
    return code


def check_gevent() -> None:
    """-P gevent runs only in a process that gevent patched before the app was imported."""
    from taskq import gevent_patch
    from taskq.worker.gevent_pool import NOT_PATCHED

    if gevent_patch.missing:
        raise CommandError(gevent_patch.missing)
    if not gevent_patch.patched():
        raise CommandError(NOT_PATCHED)


def worker_metrics(app: TaskQ, node: str, queue_list: list[str], port: int) -> WorkerMetrics:
    from taskq import metrics

    problem = metrics.check_port(port)
    if problem:
        raise CommandError(problem)
    own_dir = metrics.prepare()  # before prometheus_client is imported
    try:
        return metrics.WorkerMetrics(app, node, queue_list, port, own_dir)
    except ImportError:
        raise CommandError("--metrics-port needs prometheus_client: pip install 'taskq[metrics]'") from None


def check_dashboard(port: int, bind: str) -> Options:
    """The dashboard's options, checked before anything starts; credentials come from
    TASKQ_DASHBOARD_AUTH / TASKQ_DASHBOARD_TOKEN, as ``taskq dashboard`` reads them."""
    import os

    from taskq.dashboard.server import Options

    options = Options(port, bind, os.environ.get("TASKQ_DASHBOARD_AUTH"), os.environ.get("TASKQ_DASHBOARD_TOKEN"))
    try:
        options.check()
    except TaskQError as exc:
        raise CommandError(str(exc)) from None
    return options


def apply_celery_flags(
    app: TaskQ, time_limit: float | None, soft_time_limit: float | None, include: str | None,
    without_heartbeat: bool, heartbeat_interval: float | None,
) -> None:
    """Celery's worker flags that are settings in taskq, set before the settings freeze; a
    flag beats the app's keywords and app.conf, as in Celery."""
    if time_limit is not None:
        app.pin("task_time_limit", time_limit)
    if soft_time_limit is not None:
        app.pin("task_soft_time_limit", soft_time_limit)
    if include:
        app.pin("include", (*app.conf.include, *(m.strip() for m in include.split(",") if m.strip())))
    if heartbeat_interval is not None:
        app.pin("worker_event_heartbeat", heartbeat_interval)
    if without_heartbeat:
        app.pin("worker_event_heartbeat", 0)  # the monitor then sends no worker-heartbeat events


def purge_queues(app: TaskQ, queue_list: list[str]) -> None:
    """--purge: drop the messages waiting in the worker's queues before it starts (as Celery's)."""
    try:
        for queue in queue_list:
            log.warning("--purge: deleted %d message(s) from %s", app.broker.purge(queue), queue)
    except TaskQError as exc:
        raise CommandError(str(exc)) from None
    finally:
        app.close()


def prepare_node(app: TaskQ, hostname: str | None, task_events: bool) -> None:
    """The node name (-n, expanded as Celery's) and -E, set before the settings freeze."""
    app.conf.worker_hostname = nodename(hostname or app.conf.worker_hostname)  # -n beats TASKQ_WORKER_HOSTNAME
    if task_events:
        app.conf.worker_send_task_events = True


def check_name_free(app: TaskQ, node: str) -> None:
    """Two workers with one name would split its mailbox: the second one stops here."""
    try:
        if family(app.conf.broker_url) in IN_PROCESS_CHECK:
            taken = name_in_use(app, node)
        else:
            taken = name_in_use_apart(app, node)
    finally:
        app.close()
    if taken:
        raise CommandError(f"a worker named {node} is already running (give this one another name with -n)")


IN_PROCESS_CHECK = frozenset({"sqlite", "postgresql", "memory"})  # mailboxes without kombu
NAME_TAKEN, NAME_FREE, NAME_UNKNOWN = 3, 0, 4  # the checking child's exit statuses


def name_in_use(app: TaskQ, node: str) -> bool:
    """Whether a live worker answers to ``node``; False (with a warning) when the check fails."""
    try:
        mailbox = create_mailbox(app.conf)
        try:
            return mailbox.name_in_use(node)
        finally:
            mailbox.close()
    except Exception as exc:  # the worker still runs; its control process keeps trying
        log.warning("Could not check that the name %s is free (%s); remote control may be unavailable", node, exc)
        return False


def name_in_use_apart(app: TaskQ, node: str) -> bool:
    """``name_in_use`` in a throwaway child process. The mailbox on Redis and RabbitMQ is
    kombu's: imported here it would stay in the supervisor and in every child it forks
    (about 5 MB of RSS each, measured in docs/performance.md "Idle memory"); only the
    control process needs it."""
    pid = os.fork()
    if pid == 0:
        code = NAME_UNKNOWN
        try:
            code = NAME_TAKEN if name_in_use(app, node) else NAME_FREE
        finally:
            os._exit(code)
    status = os.waitpid(pid, 0)[1]
    return os.waitstatus_to_exitcode(status) == NAME_TAKEN
