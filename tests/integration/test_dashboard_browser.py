"""The dashboard in a real browser: a worker (-E) and ``taskq dashboard`` as subprocesses on a
SQLite broker of the test's own, and headless Chromium (Debian's chromium + chromedriver,
driven by Selenium) looking at the page as a user does.

Skips with the reason when Chromium, chromedriver or Selenium is missing; FAILS under CI=true
(.ci/run installs them). The run writes the screenshots docs/dashboard.md shows.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.integration.workers import wait_until
from tests.servers import IN_CI, free_port

REPO = Path(__file__).resolve().parents[2]
SCREENSHOTS = REPO / "docs" / "dashboard"
CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
WAIT = 40.0  # seconds any one thing the page should show may take (a loaded 2-core CI machine)

PROJECT = '''
import os
import time

from taskq import TaskQ

app = TaskQ("dash_tasks")  # broker from TASKQ_BROKER_URL


@app.task
def add(a, b):
    return a + b


@app.task
def boom(text):
    raise ValueError("boom: " + text)


@app.task
def long_sleep(seconds):
    time.sleep(seconds)
    return "woke"


@app.task(autoretry_for=(RuntimeError,), max_retries=0)
def fails_first_time(flag):
    """Its first run fails for good (a dead letter); the requeued message then succeeds."""
    if not os.path.exists(flag):
        open(flag, "w").close()
        raise RuntimeError("first run fails")
    return "second run ok"
'''


def require_browser() -> None:
    missing = [what for what, ok in (
        ("chromium", os.path.exists(CHROMIUM)), ("chromedriver", os.path.exists(CHROMEDRIVER)),
    ) if not ok]
    try:
        import selenium  # noqa: F401
    except ImportError:
        missing.append("selenium (pip install -e '.[dev]')")
    if missing:
        reason = f"the browser test needs {', '.join(missing)} (apt-get install -y chromium chromium-driver)"
        if IN_CI:
            pytest.fail(f"{reason}, and CI=true requires it")
        pytest.skip(reason)


@dataclass
class Stack:
    base: str
    queue: str
    tmp: Path
    env: dict[str, str]
    procs: list[subprocess.Popen[bytes]]

    def log(self, name: str) -> str:
        path = self.tmp / name
        return path.read_text(errors="replace") if path.exists() else ""

    def start(self, log: str, *args: str) -> subprocess.Popen[bytes]:
        out = open(self.tmp / log, "ab")
        proc = subprocess.Popen([sys.executable, "-m", "taskq", *args], cwd=self.tmp, env=self.env,
                                stdout=out, stderr=subprocess.STDOUT)
        self.procs.append(proc)
        return proc


@pytest.fixture
def stack(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Stack]:
    require_browser()
    (tmp_path / "dash_tasks.py").write_text(textwrap.dedent(PROJECT))
    queue = f"dash-{uuid.uuid4().hex[:8]}"
    settings = {
        "TASKQ_BROKER_URL": f"sqlite:///{tmp_path}/broker.db", "TASKQ_TASK_DEFAULT_QUEUE": queue,
        "TASKQ_BROKER_POLL_INTERVAL": "0.02",
    }
    env = {k: v for k, v in os.environ.items() if not k.startswith("TASKQ_")}
    env.update(settings, PYTHONUNBUFFERED="1",
               PYTHONPATH=os.pathsep.join([str(tmp_path), str(REPO), env.get("PYTHONPATH", "")]))
    for key, value in settings.items():  # this process's app sends on the same broker
        monkeypatch.setenv(key, value)
    monkeypatch.syspath_prepend(str(tmp_path))
    port = free_port()
    running = Stack(f"http://127.0.0.1:{port}", queue, tmp_path, env, [])
    try:
        worker = running.start("worker.log", "worker", "-A", "dash_tasks:app", "-E", "-c", "3", "-l", "info",
                               "-n", f"{queue}@%h")
        wait_until(lambda: "ready:" in running.log("worker.log") or worker.poll() is not None, WAIT, "worker ready")
        assert worker.poll() is None, running.log("worker.log")
        dashboard = running.start("dashboard.log", "dashboard", "-A", "dash_tasks:app", "--port", str(port),
                                  "--refresh", "0.3")
        wait_until(lambda: answers(running.base) or dashboard.poll() is not None, WAIT, "dashboard up")
        assert dashboard.poll() is None, running.log("dashboard.log")
        yield running
    finally:
        for proc in running.procs:
            proc.terminate()
        for proc in running.procs:
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(10)
        sys.modules.pop("dash_tasks", None)


def answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url + "/", timeout=2) as response:
            return bool(response.status == 200)
    except OSError:
        return False


@pytest.fixture
def browser() -> Iterator[Any]:
    require_browser()
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for argument in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                     "--window-size=1400,1100", "--hide-scrollbars"):
        options.add_argument(argument)
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    driver.set_page_load_timeout(WAIT)
    try:
        yield driver
    finally:
        driver.quit()


def text(driver: Any, selector: str) -> str | None:
    """The visible text of the first element ``selector`` matches, or None; read in one script
    call, since the live stream may replace an element between two WebDriver calls."""
    value = driver.execute_script(
        "const found = document.querySelector(arguments[0]); return found ? found.innerText : null;", selector
    )
    return None if value is None else str(value)


def task_row(task_id: str) -> str:
    return f'#tasks tr[data-task-id="{task_id}"]'


def state_of(driver: Any, task_id: str) -> str | None:
    return text(driver, task_row(task_id) + " td.state")


def click(driver: Any, selector: str, what: str) -> None:
    """Click what ``selector`` finds, again if the live stream replaced it in between."""
    from selenium.common.exceptions import NoSuchElementException, StaleElementReferenceException
    from selenium.webdriver.common.by import By

    def attempt() -> bool:
        try:
            driver.find_element(By.CSS_SELECTOR, selector).click()
            return True
        except (StaleElementReferenceException, NoSuchElementException):
            return False

    wait_until(attempt, WAIT, what)


def test_the_dashboard_shows_the_fleet_live_and_its_buttons_act(stack: Stack, browser: Any, tmp_path: Path) -> None:
    from dash_tasks import add, app, boom, fails_first_time, long_sleep  # type: ignore[import-not-found]

    from taskq.beat import every
    from taskq.beat.core.schedule_api import schedule_api_for

    # Given a beat entry in the schedule store and the page open on a fleet of one worker
    schedule_api_for(app).add_job(add, every(hours=1), args=(1, 1), id="hourly-add")
    browser.get(stack.base + "/")
    wait_until(lambda: "online" in (text(browser, "#workers") or ""), WAIT, "the worker shown online")
    wait_until(lambda: text(browser, "#live") == "live", WAIT, "the live stream connected")
    browser.execute_script("window.__notReloaded = 42;")

    # When tasks run: one succeeds, one fails with an XSS argument, one runs long
    evil = '<script>window.__xss = 1</script><img src=x onerror="window.__xss = 2">'
    ok, failed, long = add.delay(2, 3), boom.delay(evil), long_sleep.delay(300)

    # Then the list shows them as they change, without a reload
    wait_until(lambda: state_of(browser, ok.id) == "SUCCESS", WAIT, "the succeeded task listed")
    wait_until(lambda: state_of(browser, failed.id) == "FAILURE", WAIT, "the failed task listed")
    wait_until(lambda: state_of(browser, long.id) == "STARTED", WAIT, "the long task listed as started")
    assert browser.execute_script("return window.__notReloaded;") == 42
    assert "(2, 3)" in (text(browser, task_row(ok.id)) or "")

    # and the XSS argument is text on the page: nothing ran, no element was made from it
    assert "<script>window.__xss = 1</script>" in (text(browser, task_row(failed.id) + " td.args") or "")
    assert browser.execute_script("return window.__xss;") is None
    assert browser.execute_script("return document.querySelectorAll('#tasks img, #tasks script').length;") == 0
    assert stack.queue in (text(browser, "#queues") or "")

    # When the long task's revoke button is clicked, then it shows REVOKED (and the backend agrees)
    click(browser, task_row(long.id) + " button.revoke", "revoke")
    wait_until(lambda: state_of(browser, long.id) == "REVOKED", WAIT, "the long task REVOKED")
    assert long.state == "REVOKED"
    assert browser.execute_script("return window.__notReloaded;") == 42

    # When a task fails for good its message waits among the dead letters; requeue runs it again
    flaky = fails_first_time.delay(str(tmp_path / "flag"))
    letter = f'#dead-letters tr[data-task-id="{flaky.id}"]'
    wait_until(lambda: text(browser, letter) is not None, WAIT, "the dead letter listed")
    wait_until(lambda: state_of(browser, flaky.id) == "FAILURE", WAIT, "the dead-lettered task FAILURE")
    browser.save_screenshot(str(screenshot("overview.png")))
    dead_section = browser.execute_script(
        "const section = document.getElementById('dead-letters-section'); section.scrollIntoView(); return section;"
    )
    dead_section.screenshot(str(screenshot("dead-letters.png")))
    click(browser, letter + " button.requeue", "requeue")
    wait_until(lambda: state_of(browser, flaky.id) == "SUCCESS", WAIT, "the requeued task run")
    assert flaky.get(timeout=WAIT) == "second run ok"
    wait_until(lambda: text(browser, letter) is None, WAIT, "the dead letter gone")

    # The beat entry's pause and resume buttons change it in the schedule store
    entry = "#beat tr[data-entry='hourly-add']"
    wait_until(lambda: text(browser, entry + " td:nth-child(6)") == "active", WAIT, "the beat entry")
    click(browser, entry + " button.pause", "pause")
    wait_until(lambda: schedule_api_for(app).get_job("hourly-add").paused, WAIT, "the entry paused in the store")
    wait_until(lambda: text(browser, entry + " td:nth-child(6)") == "paused", WAIT, "shown paused")
    click(browser, entry + " button.resume", "resume")
    wait_until(lambda: not schedule_api_for(app).get_job("hourly-add").paused, WAIT, "the entry resumed")

    # The filter narrows the live list without a reload
    click(browser, '#task-filter select[name="state"] option[value="FAILURE"]', "the FAILURE filter")
    click(browser, "#task-filter button", "filter")
    wait_until(lambda: text(browser, task_row(ok.id)) is None and text(browser, task_row(failed.id)) is not None,
               WAIT, "only failed tasks listed")
    assert browser.execute_script("return window.__notReloaded;") == 42

    # The detail view of the failed task: its arguments as text, exception, traceback, timeline
    browser.get(f"{stack.base}/tasks/{failed.id}")
    wait_until(lambda: "task-failed" in (text(browser, "ol.timeline") or ""), WAIT, "the timeline")
    detail = text(browser, "#detail") or ""
    assert "<script>window.__xss = 1</script>" in detail and "ValueError" in detail
    assert "Traceback" in (text(browser, "pre.traceback") or "")
    assert browser.execute_script("return window.__xss;") is None
    browser.save_screenshot(str(screenshot("task-detail.png")))

    # and its retry button sends it again: a new task that the worker runs (and fails again)
    click(browser, "#detail button.retry", "retry")
    wait_until(lambda: "sent dash_tasks.boom again as" in (text(browser, "#flash") or ""), WAIT, "retry")
    copy_id = (text(browser, "#flash") or "").rsplit(" ", 1)[1]
    wait_until(lambda: app.AsyncResult(copy_id).state == "FAILURE", WAIT, "the retried copy run")
    wait_until(lambda: copy_id in (text(browser, ".field-retried-as") or ""), WAIT, "the detail naming the copy")


def screenshot(name: str) -> Path:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    return SCREENSHOTS / name

