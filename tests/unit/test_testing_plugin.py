"""taskq.testing as a user meets it: a test project (pytester) that uses the fixtures, run
by pytest with the plugin loaded as its entry point would load it."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from taskq import Task, TaskQ
from taskq.testing import InProcessWorker, memory_app

tomllib = pytest.importorskip("tomllib")
PYPROJECT = Path(__file__).resolve().parents[2] / "pyproject.toml"


def run_project(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, source: str) -> pytest.RunResult:
    # Only this plugin: an installed entry point would load it a second time under its own name.
    monkeypatch.setenv("PYTEST_DISABLE_PLUGIN_AUTOLOAD", "1")
    pytester.makepyfile(test_user_project=source)
    return pytester.runpytest("-p", "taskq.testing", "-p", "no:cacheprovider", "-q")


def test_the_plugin_is_registered_as_a_pytest11_entry_point() -> None:
    entry_points = tomllib.loads(PYPROJECT.read_text())["project"]["entry-points"]["pytest11"]
    assert entry_points == {"taskq": "taskq.testing"}


def test_a_user_project_runs_tasks_on_a_real_in_process_worker(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    result = run_project(pytester, monkeypatch, '''
import threading, time
import pytest
from taskq import states

@pytest.fixture
def taskq_worker_parameters():
    return {"concurrency": 2}

def test_results_are_ready_once_wait_for_all_returns(taskq_app, taskq_worker):
    @taskq_app.task
    def slow_add(a, b):
        time.sleep(0.05)
        return a + b

    @taskq_app.task(acks_late=False)
    def early(x):
        time.sleep(0.05)
        return -x

    results = [slow_add.delay(i, i) for i in range(6)] + [early.delay(7)]
    taskq_worker.wait_for_all(timeout=20)
    # Read without waiting: every outcome is written when wait_for_all returns.
    assert [r.state for r in results] == [states.SUCCESS] * 7
    assert [r.result for r in results] == [0, 2, 4, 6, 8, 10, -7]
    assert taskq_app.broker.queue_length("celery") == 0
    assert {t.name for t in threading.enumerate()} >= {"taskq-test-consumer-0", "taskq-test-consumer-1"}

def test_retries_are_waited_for(taskq_app, taskq_worker):
    seen = []

    @taskq_app.task(bind=True, max_retries=3)
    def flaky(self):
        seen.append(self.request.retries)
        if self.request.retries < 2:
            raise self.retry(countdown=0.1)
        return "ok"

    r = flaky.delay()
    taskq_worker.wait_for_all(timeout=20)
    assert seen == [0, 1, 2] and r.state == states.SUCCESS and r.result == "ok"

def test_wait_for_all_times_out_naming_what_is_left(taskq_app, taskq_worker):
    release = threading.Event()

    @taskq_app.task
    def blocked():
        release.wait(10)

    blocked.delay()
    blocked.delay()
    with pytest.raises(TimeoutError, match=r"celery: 2; 2 being handled"):
        taskq_worker.wait_for_all(timeout=0.5)
    release.set()
    taskq_worker.wait_for_all(timeout=20)

def test_the_worker_of_earlier_tests_was_stopped():
    assert not [t for t in threading.enumerate() if t.name.startswith("taskq-test-consumer")]
''')
    result.assert_outcomes(passed=4)


def test_eager_mode_runs_tasks_inline_with_celerys_results(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    result = run_project(pytester, monkeypatch, '''
import asyncio
import pytest
from taskq import states

@pytest.fixture
def taskq_config():
    return {"task_always_eager": True}

def test_eager(taskq_app):
    calls = []

    @taskq_app.task(bind=True, max_retries=2)
    def retried(self, x):
        calls.append(self.request.retries)
        if self.request.retries < 2:
            raise self.retry(countdown=60)  # not waited in eager mode
        return x * 10

    @taskq_app.task
    def boom():
        raise KeyError("missing")

    @taskq_app.task
    async def double(x):
        await asyncio.sleep(0)
        return 2 * x

    r = retried.delay(4)
    assert (r.get(), r.state, r.successful(), r.ready(), calls) == (40, states.SUCCESS, True, True, [0, 1, 2])
    failed = boom.apply_async(task_id="fixed-id")
    assert failed.id == "fixed-id" and failed.failed() and isinstance(failed.result, KeyError)
    assert "KeyError" in failed.traceback
    with pytest.raises(KeyError, match="missing"):
        failed.get()
    assert isinstance(failed.get(propagate=False), KeyError)
    assert double.delay(21).get() == 42
    assert [r.get() for r in double.delay_many([(1,), (2,)])] == [2, 4]
    assert taskq_app.broker.queue_length("celery") == 0  # nothing was sent
    with pytest.raises(Exception, match="unknown send option"):
        double.apply_async((1,), bogus=1)

def test_eager_propagates(taskq_app):
    taskq_app.conf.task_eager_propagates = True

    @taskq_app.task
    def boom():
        raise ValueError("now")

    with pytest.raises(ValueError, match="now"):
        boom.delay()

''')
    result.assert_outcomes(passed=2)


def test_eager_call_from_a_running_event_loop(taskq_app: TaskQ) -> None:
    import asyncio

    taskq_app.conf.task_always_eager = True

    @taskq_app.task(bind=True)
    async def whoami(self: Task[[], str]) -> str:
        return self.request.id

    async def caller() -> str:
        return whoami.apply_async(task_id="inside-a-loop").get()

    assert asyncio.run(caller()) == "inside-a-loop"


def test_memory_app_points_a_project_app_at_memory_and_restores_it(tmp_path: Path) -> None:
    app = TaskQ("shop", broker=f"sqlite:///{tmp_path}/shop.db", worker_heartbeat_file=str(tmp_path / "hb"))

    @app.task
    def add(a: int, b: int) -> int:
        return a + b

    with memory_app(app), InProcessWorker(app) as worker:
        assert app.conf.broker_url.startswith("memory://taskq-test-")
        result = add.delay(2, 3)
        worker.wait_for_all(timeout=10)
        assert result.get(timeout=1) == 5
    assert app.conf.broker_url == f"sqlite:///{tmp_path}/shop.db" and app.conf.result_backend is None
    assert not (tmp_path / "shop.db").exists()  # the block never touched the project's broker


def test_a_consumer_that_dies_is_reported_by_wait_for_all(taskq_app: TaskQ) -> None:
    worker = InProcessWorker(taskq_app)

    def die() -> None:
        raise SystemExit("consumer ended")

    setattr(worker.consumers[0], "run", die)  # noqa: B010
    worker.start()
    with pytest.raises(RuntimeError, match="consumer died"):
        worker.wait_for_all(timeout=5)
    with pytest.raises(RuntimeError, match="consumer died"):
        worker.stop()
    assert not [t for t in threading.enumerate() if t.name.startswith("taskq-test-consumer")]
