"""Issue 19 point 2: ``-A proj`` as Celery finds the app, before or after the command, and
Celery's worker flags accepted with Celery's spelling or refused by name in one line."""

from __future__ import annotations

import sys
import textwrap
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner

from taskq import TaskQ
from taskq.cli import cli
from taskq.compat.find_app import find_app
from taskq.errors import ConfigurationError


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[Path, str]]:
    name = f"cproj_{uuid.uuid4().hex[:10]}"
    (tmp_path / name).mkdir()
    (tmp_path / name / "__init__.py").write_text("")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.chdir(tmp_path)
    yield tmp_path / name, name
    for module in [m for m in sys.modules if m == name or m.startswith(name + ".")]:
        del sys.modules[module]


def app_module(name: str, attr: str = "app") -> str:
    return textwrap.dedent(f"""
        from taskq import Celery
        {attr} = Celery("{name}", broker="memory://{name}")
    """)


def test_proj_finds_proj_celery_app_as_celery_does(project: tuple[Path, str]) -> None:
    root, name = project
    (root / "celery.py").write_text(app_module(name))
    found = find_app(name)  # proj -> proj.celery (a module) -> its app
    app = sys.modules[f"{name}.celery"].app
    assert found is app
    assert find_app(f"{name}.celery") is app
    assert find_app(f"{name}.celery:app") is app
    assert find_app(f"{name}.celery.app") is app


def test_the_one_app_of_a_module_is_found_under_any_name(project: tuple[Path, str]) -> None:
    root, name = project
    (root / "worker_app.py").write_text(app_module(name, attr="taskq_app"))
    assert isinstance(find_app(f"{name}.worker_app"), TaskQ)
    (root / "__init__.py").write_text(app_module(name, attr="celery"))  # proj.celery being the app itself
    del sys.modules[name]
    assert find_app(name) is sys.modules[name].celery


def test_a_missing_or_appless_module_is_one_clear_error(project: tuple[Path, str]) -> None:
    root, name = project
    (root / "empty.py").write_text("x = 1\n")
    with pytest.raises(ConfigurationError, match="no TaskQ app found there"):
        find_app(f"{name}.empty")
    with pytest.raises(ConfigurationError, match="no module named 'nothing_here_xyz'"):
        find_app("nothing_here_xyz")
    (root / "broken.py").write_text("import nothing_here_abc\n")
    with pytest.raises(ConfigurationError, match="importing it failed"):
        find_app(f"{name}.broken")


def test_the_app_option_works_before_the_command(project: tuple[Path, str], tmp_path: Path) -> None:
    root, name = project
    (root / "celery.py").write_text(app_module(name))
    env = {"TASKQ_WORKER_HEARTBEAT_FILE": str(tmp_path / "hb")}
    runner = CliRunner()
    before = runner.invoke(cli, ["-A", name, "worker", "-l", "INFO", "--check"], env=env)
    after = runner.invoke(cli, ["worker", "-A", name, "--loglevel", "info", "--check"], env=env)
    for result in (before, after):  # the app was found: the health check ran (no heartbeat: exit 1)
        assert result.exit_code == 1 and "worker heartbeat" in result.output, result.output
    env_too = runner.invoke(cli, ["-A", name, "worker", "--check"], env={**env, "TASKQ_APP": "no_such_app_xyz"})
    assert env_too.exit_code == 1 and "worker heartbeat" in env_too.output  # the command line beats TASKQ_APP
    missing = runner.invoke(cli, ["worker", "--check"], env={"TASKQ_APP": ""})
    assert missing.exit_code == 2
    assert missing.output.strip().splitlines() == [
        "taskq: error: -A/--app is required: your project's module (proj, proj.celery:app) or TASKQ_APP"
    ]


@pytest.mark.parametrize(
    ("args", "line"),
    [
        (["--autoscale", "10,3"], "taskq: error: --autoscale is a Celery option taskq does not support: autoscaling"),
        (["-D"], "taskq: error: -D/--detach is a Celery option taskq does not support: run taskq under"),
        (["--pidfile", "/tmp/x.pid"], "taskq: error: --pidfile is a Celery option taskq does not support"),
        (["-P", "eventlet"], "taskq: error: -P eventlet is not supported: use -P gevent"),
    ],
)
def test_celery_worker_flags_taskq_lacks_are_refused_by_name(args: list[str], line: str) -> None:
    result = CliRunner().invoke(cli, ["-A", "taskq.demo:app", "worker", *args])
    assert result.exit_code == 2
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(line), result.output


def test_every_celery_worker_and_global_option_is_taskqs_or_refused_by_name() -> None:
    celery_cli = pytest.importorskip("celery.bin.celery")
    from celery.bin.worker import worker as celery_worker

    from taskq.cli.worker import worker

    def names(command: object) -> set[str]:
        return {opt for p in command.params for opt in (*p.opts, *p.secondary_opts)}  # type: ignore[attr-defined]

    assert names(celery_worker) - names(worker) == set()
    assert names(celery_cli.celery) - names(cli) == set()


def test_celery_worker_flags_that_are_settings_set_them() -> None:
    from taskq.cli.worker import apply_celery_flags, purge_queues

    name = uuid.uuid4().hex
    app = TaskQ("flags", broker=f"memory://{name}", backend=f"memory://{name}", include=["json"])
    apply_celery_flags(app, 30.0, 25.0, "csv, string", without_heartbeat=True, heartbeat_interval=None)
    assert (app.conf.task_time_limit, app.conf.task_soft_time_limit) == (30.0, 25.0)
    assert app.conf.include == ("json", "csv", "string")
    assert app.conf.worker_event_heartbeat == 0  # the monitor sends no worker-heartbeat events then
    apply_celery_flags(app, None, None, None, without_heartbeat=False, heartbeat_interval=5.0)
    assert app.conf.worker_event_heartbeat == 5.0
    app.conf.task_time_limit = 10  # the project's own assignments do not undo the flags at start
    app.conf.include = ("json",)

    app.send_task("x.y", (1,))
    app.send_task("x.y", (2,))
    broker = app.broker
    assert broker.queue_length("celery") == 2
    purge_queues(app, ["celery"])  # --purge / --discard
    assert broker.queue_length("celery") == 0
    conf = app.finalize()
    assert conf.include == ("json", "csv", "string") and conf.task_time_limit == 30.0
