"""An APScheduler 3 program moves to taskq by a prefix swap of its imports (``apscheduler.`` ->
``taskq.beat.``): every module of APScheduler's installed package has its ``taskq.beat`` twin,
and every public name a module defines is importable from the twin (classes as classes,
functions as callables, constants with the same value)."""

from __future__ import annotations

import ast
import importlib
import importlib.util
import inspect
import pkgutil
from pathlib import Path
from typing import Any

import apscheduler
import pytest

# What taskq leaves out, and why (docs/apscheduler.md says the same).
NOT_MIRRORED = {
    "apscheduler.util": "APScheduler's own helpers, not part of its API",
    "apscheduler.jobstores.etcd": "no job store on etcd (use sqlalchemy, redis or sqlite)",
    "apscheduler.jobstores.mongodb": "no job store on MongoDB (use sqlalchemy, redis or sqlite)",
    "apscheduler.jobstores.rethinkdb": "no job store on RethinkDB (use sqlalchemy, redis or sqlite)",
    "apscheduler.jobstores.zookeeper": "no job store on ZooKeeper (use sqlalchemy, redis or sqlite)",
}
# APScheduler's own version numbers describe APScheduler, not taskq.
NOT_MIRRORED_NAMES = {"apscheduler": {"release", "version", "version_info"}}


def apscheduler_modules() -> list[str]:
    found = ["apscheduler"]
    found += [m.name for m in pkgutil.walk_packages(apscheduler.__path__, "apscheduler.")]
    return sorted(found)


def twin(module: str) -> str:
    return "taskq.beat" + module[len("apscheduler") :]


def source_of(module: str) -> Path:
    spec = importlib.util.find_spec(module)
    assert spec is not None and spec.origin is not None
    return Path(spec.origin)


def defined_names(module: str) -> set[str]:
    """The public names the module itself defines (read from its source, so a module whose
    optional driver is missing can be read too), plus its ``__all__``."""
    tree = ast.parse(source_of(module).read_text(encoding="utf-8"))
    names: set[str] = set()
    for node in tree.body:
        if isinstance(node, (ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
            names.add(node.name)
        elif isinstance(node, ast.Assign):
            for target in node.targets:
                names.update(n.id for n in ast.walk(target) if isinstance(n, ast.Name))
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            names.add(node.target.id)
    names.discard("__all__")
    exported: set[str] = set()
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(isinstance(t, ast.Name) and t.id == "__all__" for t in node.targets):
            exported = {ast.literal_eval(e) for e in node.value.elts}  # type: ignore[attr-defined]
    return {n for n in names if not n.startswith("_")} | exported


MIRRORED = [m for m in apscheduler_modules() if m not in NOT_MIRRORED]


def test_apscheduler_3_11_is_the_one_compared() -> None:
    assert apscheduler.__version__.startswith("3.11"), apscheduler.__version__
    assert len(MIRRORED) >= 30  # the walk found the package (28 modules and 5 packages in 3.11)


def test_every_left_out_module_exists_in_apscheduler() -> None:
    """The list of exceptions cannot rot: each names a module APScheduler has."""
    assert set(NOT_MIRRORED) <= set(apscheduler_modules())


@pytest.mark.parametrize("module", MIRRORED)
def test_module_has_its_taskq_twin_with_every_public_name(module: str) -> None:
    ours = importlib.import_module(twin(module))
    theirs = importlib.import_module(module)
    missing = []
    for name in sorted(defined_names(module) - NOT_MIRRORED_NAMES.get(module, set())):
        if not hasattr(ours, name):
            missing.append(name)
            continue
        assert_alike(f"{twin(module)}.{name}", getattr(theirs, name), getattr(ours, name))
    assert not missing, f"{twin(module)} lacks {', '.join(missing)}"


def assert_alike(where: str, theirs: Any, ours: Any) -> None:
    if inspect.isclass(theirs):
        assert inspect.isclass(ours), f"{where} should be a class"
    elif callable(theirs):
        assert callable(ours), f"{where} should be callable"
    elif isinstance(theirs, (int, str, float)):
        assert ours == theirs, f"{where} is {ours!r}, APScheduler's is {theirs!r}"


def test_the_errors_are_the_ones_taskq_raises() -> None:
    """``except`` clauses written for APScheduler catch what taskq raises."""
    import taskq.beat as tq
    from taskq.beat.executors.base import MaxInstancesReachedError
    from taskq.beat.job import JobSerializationError
    from taskq.beat.jobstores.base import ConflictingIdError, JobLookupError, TransientJobError
    from taskq.beat.schedulers import SchedulerAlreadyRunningError, SchedulerNotRunningError
    from taskq.errors import TaskQError

    assert (JobLookupError, ConflictingIdError) == (tq.JobLookupError, tq.ConflictingIdError)
    assert (SchedulerAlreadyRunningError, SchedulerNotRunningError) == (
        tq.SchedulerAlreadyRunningError,
        tq.SchedulerNotRunningError,
    )
    assert issubclass(JobSerializationError, TransientJobError) and issubclass(TransientJobError, ValueError)
    assert issubclass(MaxInstancesReachedError, TaskQError)
    scheduler = tq.BackgroundScheduler()
    with pytest.raises(SchedulerNotRunningError):
        scheduler.shutdown()


def test_run_job_reports_as_apschedulers() -> None:
    """``executors.base.run_job`` and ``run_coroutine_job``, for executors written for
    APScheduler: the same events, in order, for a run on time, one too late, one that fails."""
    import asyncio
    from datetime import datetime, timedelta, timezone
    from types import SimpleNamespace

    import apscheduler.executors.base as aps_base

    import taskq.beat.executors.base as tq_base

    def job(func: Any) -> Any:
        return SimpleNamespace(id="j", func=func, args=(2,), kwargs={}, misfire_grace_time=5)

    def double(x: int) -> int:
        return 2 * x

    def broken(x: int) -> int:
        raise ValueError(x)

    async def adouble(x: int) -> int:
        return 2 * x

    now = datetime.now(timezone.utc)
    times = [now, now - timedelta(seconds=60)]

    def seen(events: list[Any]) -> list[tuple[int, Any, Any]]:
        return [(e.code, e.retval, type(e.exception)) for e in events]

    for func in (double, broken):
        theirs = aps_base.run_job(job(func), "default", times, "test")
        ours = tq_base.run_job(job(func), "default", times, "test")
        assert seen(ours) == seen(theirs) and len(ours) == 2
    theirs = asyncio.run(aps_base.run_coroutine_job(job(adouble), "default", times, "test"))
    ours = asyncio.run(tq_base.run_coroutine_job(job(adouble), "default", times, "test"))
    assert seen(ours) == seen(theirs) and ours[0].retval == 4


def test_run_in_event_loop_runs_the_method_on_the_scheduler_loop() -> None:
    import asyncio
    import threading

    from taskq.beat.schedulers.asyncio import AsyncIOScheduler, run_in_event_loop

    class Probe(AsyncIOScheduler):
        @run_in_event_loop
        def where(self, box: list[str]) -> None:
            box.append(threading.current_thread().name)

    async def scenario() -> list[str]:
        probe = Probe()
        probe._eventloop = asyncio.get_running_loop()
        box: list[str] = []
        thread = threading.Thread(target=probe.where, args=(box,), name="caller")
        thread.start()
        thread.join()
        assert box == []  # queued on the loop, not run in the calling thread
        await asyncio.sleep(0.05)
        return box

    assert asyncio.run(scenario()) == [threading.main_thread().name]
