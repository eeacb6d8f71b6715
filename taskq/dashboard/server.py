"""Running the dashboard: ``taskq dashboard`` in the foreground (uvicorn), or beside a worker
(``taskq worker --dashboard``): a child process, or a thread on the in-process memory://
broker (whose events exist only in that process)."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from taskq.dashboard.security import Security, bind_problem
from taskq.errors import ConfigurationError

if TYPE_CHECKING:
    from taskq.app import TaskQ

DEFAULT_PORT = 5555  # Flower's
DEFAULT_BIND = "127.0.0.1"
# The worker's prefork children write metrics files there; the dashboard counts on its own.
METRICS_DIR_ENV = "PROMETHEUS_MULTIPROC_DIR"


@dataclass(frozen=True)
class Options:
    port: int = DEFAULT_PORT
    bind: str = DEFAULT_BIND
    auth: str | None = None
    token: str | None = None
    refresh: float = 1.0

    def check(self) -> None:
        """ConfigurationError (one line) when these options may not start: a public bind without
        credentials, a malformed --auth, a missing dependency, a port in use."""
        problem = bind_problem(self.bind, self.auth, self.token)
        if problem:
            raise ConfigurationError(problem)
        try:
            import starlette  # noqa: F401
            import uvicorn  # noqa: F401
        except ImportError:
            raise ConfigurationError("the dashboard needs starlette and uvicorn: pip install 'taskq[dashboard]'") \
                from None
        from taskq.metrics import check_port

        problem = check_port(self.port, self.bind)
        if problem:
            raise ConfigurationError(problem.replace("metrics port", "dashboard port"))


def server(app: TaskQ, options: Options) -> Any:
    import uvicorn

    from taskq.dashboard.routes import create_app

    web = create_app(app, Security(options.auth, options.token), options.refresh)
    config = uvicorn.Config(
        web, host=options.bind, port=options.port, log_level="warning", access_log=False, lifespan="on",
        timeout_graceful_shutdown=2,
    )
    return uvicorn.Server(config)


def serve(app: TaskQ, options: Options) -> None:
    """Serve until SIGINT/SIGTERM (uvicorn's handlers)."""
    os.environ.pop(METRICS_DIR_ENV, None)
    server(app, options).run()


def start_beside_worker(app: TaskQ, app_spec: str, options: Options) -> Callable[[], None]:
    """Start the dashboard for a worker's app (``options`` checked already); returns how to stop it."""
    if app.conf.broker_url.startswith("memory://"):
        running = server(app, options)
        thread = threading.Thread(target=running.run, name="dashboard", daemon=True)
        thread.start()

        def stop_thread() -> None:
            running.should_exit = True
            thread.join(5)

        return stop_thread
    env = {k: v for k, v in os.environ.items() if k != METRICS_DIR_ENV}
    if options.auth:  # through the environment: a command line is readable by every user of the host
        env["TASKQ_DASHBOARD_AUTH"] = options.auth
    if options.token:
        env["TASKQ_DASHBOARD_TOKEN"] = options.token
    command = [sys.executable, "-m", "taskq", "dashboard", "-A", app_spec, "--port", str(options.port),
               "--bind", options.bind, "--refresh", str(options.refresh)]
    child = subprocess.Popen(command, env=env, preexec_fn=_dies_with_parent())

    def stop_child() -> None:
        child.terminate()
        try:
            child.wait(5)
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait()

    return stop_child


def _dies_with_parent() -> Callable[[], None] | None:
    """Linux: a child-side hook that has the dashboard killed when its worker dies, even by
    SIGKILL. prctl is looked up here, in the parent: the hook itself only calls it (a
    dynamic-loader lock another thread held at fork would block the child)."""
    if not sys.platform.startswith("linux"):
        return None
    import ctypes
    import signal

    from taskq.worker.keeper import PR_SET_PDEATHSIG

    try:
        prctl = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None

    def hook() -> None:
        prctl(PR_SET_PDEATHSIG, signal.SIGKILL)

    return hook
