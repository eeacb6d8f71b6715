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
from collections.abc import Callable, Iterator
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


def row_of(driver: Any, task_id: str) -> Any:
    from selenium.webdriver.common.by import By

    rows = driver.find_elements(By.CSS_SELECTOR, f'#tasks tr[data-task-id="{task_id}"]')
    return rows[0] if rows else None


def state_of(driver: Any, task_id: str) -> str | None:
    from selenium.common.exceptions import StaleElementReferenceException
    from selenium.webdriver.common.by import By

    try:
        row = row_of(driver, task_id)
        return None if row is None else str(row.find_element(By.CSS_SELECTOR, "td.state").text)
    except StaleElementReferenceException:  # the stream replaced the table meanwhile
        return None


def click_in(driver: Any, find: Callable[[], Any], what: str) -> None:
    """Click the element ``find`` returns, again if the live stream replaced it first."""
    from selenium.common.exceptions import StaleElementReferenceException

    def attempt() -> bool:
        try:
            element = find()
            if element is None:
                return False
            element.click()
            return True
        except StaleElementReferenceException:
            return False

    wait_until(attempt, WAIT, what)


def test_the_dashboard_shows_the_fleet_live_and_its_buttons_act(stack: Stack, browser: Any, tmp_path: Path) -> None:
    from dash_tasks import add, app, boom, fails_first_time, long_sleep  # type: ignore[import-not-found]
    from selenium.webdriver.common.by import By

    # Given a beat entry in the schedule store and the page open on a fleet of one worker
    from taskq.beat import every
    from taskq.beat.core.schedule_api import schedule_api_for

    schedule_api_for(app).add_job(add, every(hours=1), args=(1, 1), id="hourly-add")
    browser.get(stack.base + "/")
    wait_until(lambda: "online" in browser.find_element(By.ID, "workers").text, WAIT, "the worker shown online")
    wait_until(lambda: browser.find_element(By.ID, "live").text == "live", WAIT, "the live stream connected")
    browser.execute_script("window.__notReloaded = 42;")

    # When tasks run: one succeeds, one fails with an XSS argument, one runs long
    evil = '<script>window.__xss = 1</script><img src=x onerror="window.__xss = 2">'
    ok, failed, long = add.delay(2, 3), boom.delay(evil), long_sleep.delay(300)

    # Then the list shows them as they change, without a reload
    wait_until(lambda: state_of(browser, ok.id) == "SUCCESS", WAIT, "the succeeded task listed")
    wait_until(lambda: state_of(browser, failed.id) == "FAILURE", WAIT, "the failed task listed")
    wait_until(lambda: state_of(browser, long.id) == "STARTED", WAIT, "the long task listed as started")
    assert browser.execute_script("return window.__notReloaded;") == 42
    assert "(2, 3)" in row_of(browser, ok.id).text

    # and the XSS argument is text on the page: nothing ran, no element was made from it
    shown_args = row_of(browser, failed.id).find_element(By.CSS_SELECTOR, "td.args").text
    assert "<script>window.__xss = 1</script>" in shown_args
    assert browser.execute_script("return window.__xss;") is None
    assert browser.find_elements(By.CSS_SELECTOR, "#tasks img, #tasks script") == []
    assert stack.queue in browser.find_element(By.ID, "queues").text

    # When the long task's revoke button is clicked, then it shows REVOKED (and the backend agrees)
    click_in(browser, lambda: row_of(browser, long.id).find_element(By.CSS_SELECTOR, "button.revoke"), "revoke")
    wait_until(lambda: state_of(browser, long.id) == "REVOKED", WAIT, "the long task REVOKED")
    assert long.state == "REVOKED"
    assert browser.execute_script("return window.__notReloaded;") == 42

    # When a task fails for good its message waits among the dead letters; requeue runs it again
    flaky = fails_first_time.delay(str(tmp_path / "flag"))
    letter_row = "#dead-letters tr[data-letter] td:nth-child(3)"

    def letter_requeue_button() -> Any:
        for cell in browser.find_elements(By.CSS_SELECTOR, letter_row):
            if cell.text == flaky.id:
                return cell.find_element(By.XPATH, "..").find_element(By.CSS_SELECTOR, "button.requeue")
        return None

    wait_until(letter_requeue_button, WAIT, "the dead letter listed")
    wait_until(lambda: state_of(browser, flaky.id) == "FAILURE", WAIT, "the dead-lettered task FAILURE")
    browser.save_screenshot(str(screenshot("overview.png")))
    browser.find_element(By.ID, "dead-letters-section").screenshot(str(screenshot("dead-letters.png")))
    click_in(browser, letter_requeue_button, "requeue")
    wait_until(lambda: state_of(browser, flaky.id) == "SUCCESS", WAIT, "the requeued task run")
    assert flaky.get(timeout=WAIT) == "second run ok"
    wait_until(lambda: letter_requeue_button() is None, WAIT, "the dead letter gone")

    # The beat entry's pause and resume buttons change it in the schedule store
    entry_status = "#beat tr[data-entry='hourly-add'] td:nth-child(6)"
    wait_until(lambda: browser.find_element(By.CSS_SELECTOR, entry_status).text == "active", WAIT, "the beat entry")
    click_in(browser, lambda: browser.find_element(By.CSS_SELECTOR, "#beat button.pause"), "pause")
    wait_until(lambda: schedule_api_for(app).get_job("hourly-add").paused, WAIT, "the entry paused in the store")
    wait_until(lambda: browser.find_element(By.CSS_SELECTOR, entry_status).text == "paused", WAIT, "shown paused")
    click_in(browser, lambda: browser.find_element(By.CSS_SELECTOR, "#beat button.resume"), "resume")
    wait_until(lambda: not schedule_api_for(app).get_job("hourly-add").paused, WAIT, "the entry resumed")

    # The filter narrows the live list without a reload
    browser.find_element(By.CSS_SELECTOR, '#task-filter select[name="state"] option[value="FAILURE"]').click()
    browser.find_element(By.CSS_SELECTOR, "#task-filter button").click()
    wait_until(lambda: row_of(browser, ok.id) is None and row_of(browser, failed.id) is not None, WAIT,
               "only failed tasks listed")
    assert browser.execute_script("return window.__notReloaded;") == 42

    # The detail view of the failed task: its arguments as text, exception, traceback, timeline
    browser.get(f"{stack.base}/tasks/{failed.id}")
    wait_until(lambda: "task-failed" in browser.find_element(By.CSS_SELECTOR, "ol.timeline").text, WAIT,
               "the timeline")
    detail = browser.find_element(By.ID, "detail").text
    assert "<script>window.__xss = 1</script>" in detail and "ValueError" in detail
    assert "Traceback" in browser.find_element(By.CSS_SELECTOR, "pre.traceback").text
    assert browser.execute_script("return window.__xss;") is None
    browser.save_screenshot(str(screenshot("task-detail.png")))

    # and its retry button sends it again: a new task that the worker runs (and fails again)
    browser.find_element(By.CSS_SELECTOR, "#detail button.retry").click()
    wait_until(lambda: "sent dash_tasks.boom again as" in browser.find_element(By.ID, "flash").text, WAIT, "retry")
    copy_id = browser.find_element(By.ID, "flash").text.rsplit(" ", 1)[1]
    wait_until(lambda: app.AsyncResult(copy_id).state == "FAILURE", WAIT, "the retried copy run")
    wait_until(lambda: copy_id in browser.find_element(By.CSS_SELECTOR, ".field-retried-as").text, WAIT,
               "the detail naming the copy")


def screenshot(name: str) -> Path:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    return SCREENSHOTS / name

