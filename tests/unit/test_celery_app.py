"""Issue 19 point 1: a Celery project's app wiring works on taskq (``from taskq import Celery``)."""

from __future__ import annotations

import sys
import textwrap
import uuid
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace

import pytest

import taskq
from taskq import Celery, TaskQ, shared_task
from taskq.errors import ConfigurationError
from tests.unit.conftest import inline_worker


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[Path, str]]:
    """An empty package with a unique name on sys.path; its modules are forgotten after."""
    name = f"proj_{uuid.uuid4().hex[:10]}"
    (tmp_path / name).mkdir()
    (tmp_path / name / "__init__.py").write_text("")
    monkeypatch.syspath_prepend(str(tmp_path))
    yield tmp_path / name, name
    for module in [m for m in sys.modules if m == name or m.startswith(name + ".")]:
        del sys.modules[module]


def write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    if not (path.parent / "__init__.py").exists():
        (path.parent / "__init__.py").write_text("")
    path.write_text(textwrap.dedent(text))


def memory_app(**kwargs: object) -> TaskQ:
    name = uuid.uuid4().hex
    return Celery("proj", broker=f"memory://{name}", backend=f"memory://{name}", **kwargs)


def warnings_of(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]


def test_celery_is_taskq_under_celerys_name() -> None:
    assert taskq.Celery is TaskQ
    assert {"Celery", "shared_task", "current_app"} <= set(taskq.__all__)


def test_old_uppercase_names_are_read_with_one_warning_each(caplog: pytest.LogCaptureFixture) -> None:
    app = memory_app(CELERYD_CONCURRENCY=3)
    app.conf.update(CELERY_TASK_RESULT_EXPIRES=60, CELERYD_CONCURRENCY=5)
    app.conf["CELERY_TASK_RESULT_EXPIRES"] = 120
    assert app.conf.result_expires == 120 and app.conf.worker_concurrency == 5
    assert app.conf["CELERY_TASK_RESULT_EXPIRES"] == 120 and "CELERYD_CONCURRENCY" in app.conf
    assert sorted(warnings_of(caplog)) == [
        "setting CELERYD_CONCURRENCY is Celery's old name for worker_concurrency: read as worker_concurrency",
        "setting CELERY_TASK_RESULT_EXPIRES is Celery's old name for result_expires: read as result_expires",
    ]


def test_settings_taskq_lacks_are_kept_and_said_once_with_the_reason(caplog: pytest.LogCaptureFixture) -> None:
    from datetime import timedelta

    app = memory_app()
    app.conf.update(
        {"worker_autoscaler": "x", "enable_utc": True, "my_own_setting": 1},
        result_expires=timedelta(hours=1), broker_connection_retry_on_startup=True,
    )
    app.conf.worker_autoscaler = "y"
    assert app.conf.result_expires == 3600.0  # timedelta read as seconds
    assert app.conf["my_own_setting"] == 1 and app.conf.get("worker_autoscaler") == "y"
    assert app.conf.get("nothing", "default") == "default"
    assert warnings_of(caplog) == [
        "Celery setting worker_autoscaler is not supported by taskq (autoscaling is not supported: run more"
        " workers); ignored",
        "unknown setting 'my_own_setting'; kept in app.conf but unused by taskq",
    ]  # enable_utc=True and broker_connection_retry_on_startup=True are what taskq does: nothing to say
    app.conf.enable_utc = False
    assert "enable_utc=False is not supported by taskq" in warnings_of(caplog)[-1]
    app.conf.CELERYD_HIJACK_ROOT_LOGGER = False
    assert warnings_of(caplog)[-1].startswith("setting CELERYD_HIJACK_ROOT_LOGGER is a Celery 3 name taskq does not")


def test_the_old_names_table_is_celerys_own_and_every_celery_setting_has_an_answer() -> None:
    celery_defaults = pytest.importorskip("celery.app.defaults")
    from taskq.compat.setting_names import FIXED, OLD_NAMES, reason_unsupported
    from taskq.config import SETTING_NAMES

    assert {old: celery_defaults._TO_NEW_KEY[old] for old in OLD_NAMES} == OLD_NAMES
    taskq_has = {old for old, new in celery_defaults._TO_NEW_KEY.items() if new in SETTING_NAMES}
    assert taskq_has <= set(OLD_NAMES), "a taskq setting's old Celery name is missing from OLD_NAMES"
    unanswered = [
        name for name in celery_defaults.SETTING_KEYS
        if name not in SETTING_NAMES and name not in FIXED and reason_unsupported(name) is None
    ]
    assert unanswered == []


def test_include_is_imported_when_a_worker_or_beat_starts(project: tuple[Path, str]) -> None:
    root, name = project
    write(root / "tasks.py", "from . import celery\n@celery.app.task\ndef add(x, y):\n    return x + y\n")
    write(root / "celery.py", f"""
        from taskq import Celery
        app = Celery("{name}", broker="memory://{name}", include=["{name}.tasks"])
    """)
    app = __import__(f"{name}.celery", fromlist=["app"]).app
    assert f"{name}.tasks.add" not in app.tasks  # Celery imports include= at worker start, not before
    app.finalize()
    assert f"{name}.tasks.add" in app.tasks


def test_include_naming_a_missing_module_is_one_clear_error() -> None:
    app = memory_app(include=["no_such_module_xyz.tasks"])
    with pytest.raises(ConfigurationError, match="include: no module named 'no_such_module_xyz'"):
        app.finalize()


def test_config_from_object_reads_modules_objects_and_namespaces(
    project: tuple[Path, str], caplog: pytest.LogCaptureFixture
) -> None:
    root, name = project
    write(root / "celeryconfig.py", """
        from datetime import timedelta
        import os
        from collections import OrderedDict
        broker_url = "memory://from-module"
        task_serializer = "json"
        result_expires = timedelta(minutes=5)
        def route_for(name, args, kwargs, options, task=None, **kw):
            return None
    """)
    app = Celery("proj")
    app.config_from_object(f"{name}.celeryconfig")
    assert app.conf.broker_url == "memory://from-module" and app.conf.result_expires == 300
    assert warnings_of(caplog) == []  # imports and helper functions are not settings

    class Config:
        worker_prefetch_multiplier = 1
        CELERY_ACKS_LATE = False

    app.config_from_object(Config)
    assert app.conf.worker_prefetch_multiplier == 1 and app.conf.task_acks_late is False

    django_like = SimpleNamespace(
        CELERY_BROKER_URL="memory://django", CELERY_TASK_TIME_LIMIT=30, DEBUG=True, INSTALLED_APPS=["x"]
    )
    app.config_from_object(django_like, namespace="CELERY")
    assert app.conf.broker_url == "memory://django" and app.conf.task_time_limit == 30
    assert "DEBUG" not in app.conf and "debug" not in app.conf  # only the namespace is read

    app.config_from_object(f"{name}.celeryconfig:broker_url", silent=True)  # not an object of settings: nothing
    with pytest.raises(ConfigurationError, match="config_from_object"):
        app.config_from_object(f"{name}.nothere")
    app.config_from_object(f"{name}.nothere", silent=True)


def test_config_from_envvar(project: tuple[Path, str], monkeypatch: pytest.MonkeyPatch) -> None:
    root, name = project
    write(root / "settings_a.py", "task_default_queue = 'from-envvar'\n")
    app = Celery("proj", broker="memory://")
    monkeypatch.setenv("PROJ_CONFIG", f"{name}.settings_a")
    assert app.config_from_envvar("PROJ_CONFIG") is True
    assert app.conf.task_default_queue == "from-envvar"
    assert app.config_from_envvar("PROJ_UNSET_VARIABLE", silent=True) is False
    with pytest.raises(ConfigurationError, match="PROJ_UNSET_VARIABLE is not set"):
        app.config_from_envvar("PROJ_UNSET_VARIABLE")


def test_autodiscover_tasks_imports_each_packages_tasks_lazily(project: tuple[Path, str]) -> None:
    root, name = project
    write(root / "orders" / "tasks.py", "from taskq import shared_task\n@shared_task\ndef ship(n):\n    return n\n")
    write(root / "users" / "models.py", "")  # a package without tasks is skipped, as in Celery
    app = memory_app()
    app.autodiscover_tasks([f"{name}.orders", f"{name}.users"])
    assert f"{name}.orders.tasks.ship" not in app.tasks
    app.finalize()
    assert f"{name}.orders.tasks.ship" in app.tasks
    assert f"{name}.users.tasks" not in sys.modules
    forced = memory_app()
    forced.autodiscover_tasks(lambda: [f"{name}.orders"], force=True)
    assert f"{name}.orders.tasks.ship" in forced.tasks


def test_shared_task_defined_before_the_app_runs_on_it() -> None:
    @shared_task(bind=True, name=f"shared.{uuid.uuid4().hex}")
    def double(self: taskq.Task[..., int], x: int) -> int:
        return x * 2 if self.name.startswith("shared.") else -1  # bound: self is the Task

    app = memory_app()  # created after the task, current from now on
    assert double.name in app.tasks and double(4) == 8
    with inline_worker(app):
        assert double.delay(5).get(timeout=10) == 10
    other = memory_app(set_as_current=False)
    assert double.name in other.tasks and taskq.current_app() is app
    assert taskq.current_app.conf is app.conf  # Celery's proxy: attributes are the current app's


def test_celery_task_options_are_mapped_or_refused_by_name() -> None:
    app = memory_app()

    @app.task(bind=True, retry_kwargs={"max_retries": 7, "countdown": 2}, serializer="json", shared=True, typing=False)
    def ok(self: object) -> None: ...

    assert ok.options.max_retries == 7 and ok.options.default_retry_delay == 2
    with pytest.raises(ConfigurationError, match="a serializer per task is not supported"):
        app.task(serializer="pickle")(lambda: None)
    with pytest.raises(ConfigurationError, match="Celery's task option base= is not supported"):
        app.task(base=object)(lambda: None)
    with pytest.raises(ConfigurationError, match="unexpected keyword argument 'no_such_option'"):
        app.task(no_such_option=1)(lambda: None)


def test_celery_constructor_arguments_taskq_lacks_are_refused() -> None:
    with pytest.raises(ConfigurationError, match="loader not supported by taskq"):
        Celery("proj", loader="default")
    app = Celery("proj", config_source={"broker_url": "memory://src"})
    assert app.conf.broker_url == "memory://src"


def test_retry_with_new_arguments_as_celery_does() -> None:
    app = memory_app()

    @app.task(bind=True, max_retries=5, default_retry_delay=0)
    def count_up(self: taskq.Task[..., int], n: int, step: int = 1) -> int:
        if n < 3:
            raise self.retry(args=(n + step,), kwargs={"step": step})
        return n * 10 + self.request.retries

    with inline_worker(app):
        assert count_up.delay(0, step=1).get(timeout=10) == 33  # runs with 0, 1, 2, then 3 (3 retries)
    app.conf.task_always_eager = True
    assert count_up.delay(1, step=2).get() == 31  # eager: 1, then 3 after one retry
