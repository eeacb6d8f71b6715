"""Prometheus metrics (issue 17.6) and log options (17.7) of real workers on SQLite,
PostgreSQL, Redis and RabbitMQ. Metrics are scraped over HTTP as Prometheus does; prefork children's counts add
up, a killed child's counts included."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import sys
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.monitoring_fleet import Fleet, fleet
from tests.integration.workers import wait_until
from tests.servers import free_port

pytest.importorskip("prometheus_client")
pytestmark = [pytest.mark.slow]


@pytest.fixture(params=["sqlite", "postgresql", "redis", "rabbitmq"])
def side(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Fleet]:
    with fleet(request.param, tmp_path) as f:
        yield f


def scrape(port: int) -> dict[str, float]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as response:
        text = response.read().decode()
    values = {}
    for line in text.splitlines():
        found = re.match(r"^(\S+)\s+(\S+)$", line)
        if found and not line.startswith("#"):
            values[found[1]] = float(found[2])
    return values


def test_metrics_add_up_across_prefork_children(side: Fleet) -> None:
    port = free_port()
    queue = f"q-{side.token}"
    # Given a prefork worker of two children serving metrics
    side.taskq_worker("met", "-c", "2", "--prefetch-multiplier", "1", "--metrics-port", str(port))
    done = 'taskq_tasks_total{state="SUCCESS",task="example_tasks.sleep_then"}'
    producer = side.producer()
    try:
        # When eight tasks run, spread over both children
        for i in range(8):
            producer.send_task("example_tasks.sleep_then", (f"m{i}", 0.2), queue=queue)
        wait_until(lambda: scrape(port).get(done) == 8, 60, "eight successes in /metrics")
        ran_in = set(re.findall(r"ForkPoolWorker-(\d)\] Task example_tasks.sleep_then\[\S+\] succeeded", side.log(
            "met.log")))
        assert ran_in == {"1", "2"}, "both children ran tasks"
        values = scrape(port)
        assert values['taskq_task_runtime_seconds_count{task="example_tasks.sleep_then"}'] == 8
        assert values['taskq_task_runtime_seconds_sum{task="example_tasks.sleep_then"}'] >= 8 * 0.2
        assert values[f'taskq_worker_up{{hostname="{side.name("met")}"}}'] == 1
        # And a child killed afterwards keeps its counts in the sum
        stats = json.loads(side.taskq("inspect", "stats", "--json", "-d", side.name("met"), "--timeout", "5").stdout)
        os.kill(stats[side.name("met")]["pool"]["processes"][0], signal.SIGKILL)
        producer.send_task("example_tasks.sleep_then", ("after-kill", 0.01), queue=queue)
        wait_until(lambda: scrape(port).get(done) == 9, 60, "nine successes after a child died")
        # And queue depth counts what waits while both children are busy; dead letters count too
        for i in range(2):
            producer.send_task("example_tasks.sleep_then", (f"busy{i}", 3), queue=queue)
        for i in range(3):
            producer.send_task("example_tasks.add", (i, i), queue=queue)
        producer.send_task("example_tasks.no_such_task", queue=queue)
        depth = f'taskq_queue_depth{{queue="{queue}"}}'
        if not side.broker.startswith("amqp"):  # RabbitMQ delivers waiting messages to the consumers' prefetch
            wait_until(lambda: scrape(port).get(depth, 0) >= 1, 30, "a queue depth while children are busy")
        wait_until(lambda: scrape(port).get(f'taskq_dead_letters{{queue="{queue}"}}') == 1, 60, "one dead letter")
        wait_until(lambda: scrape(port).get(depth) == 0, 60, "the queue drained")
    finally:
        producer.close()


def test_json_logs_to_a_file_name_the_task(side: Fleet) -> None:
    logfile = side.tmp / "worker.jsonl"
    side.taskq_worker(
        "logs", "-P", "solo", "--logfile", str(logfile), "--log-format", "json", "-l", "debug", logfile=logfile.name
    )
    producer = side.producer()
    try:
        sent = producer.send_task("example_tasks.add", (2, 2), queue=f"q-{side.token}")

        def lines() -> list[dict[str, object]]:
            return [json.loads(line) for line in logfile.read_text().splitlines()]  # every line is one object

        wait_until(lambda: any("succeeded" in str(x["message"]) for x in lines()), 30, "the task's line")
    finally:
        producer.close()
    task_lines = [x for x in lines() if x.get("task_id") == sent.id]
    assert {str(x["message"]).split("]", 1)[1].split()[0] for x in task_lines} >= {"received", "succeeded"}
    assert all(x["task_name"] == "example_tasks.add" and x["level"] == "INFO" for x in task_lines)
    # -l debug reaches the file: the control process logs each command at DEBUG
    assert side.taskq("inspect", "ping", "-d", side.name("logs"), "--timeout", "5").returncode == 0
    wait_until(lambda: any(x["level"] == "DEBUG" and "ping" in str(x["message"]) for x in lines()), 10, "debug")
    assert {"time", "level", "logger", "process", "thread", "message"} <= lines()[0].keys()


def test_bad_log_and_metrics_options_are_one_line_exit_2(side: Fleet) -> None:
    busy = socket.socket()
    busy.bind(("", 0))
    busy.listen()
    try:
        cases = [
            (("--logfile", str(side.tmp / "no" / "such" / "dir.log")), "--logfile"),
            (("--metrics-port", str(busy.getsockname()[1])), "cannot be served"),
            (("--log-format", "xml"), "xml"),
        ]
        for args, message in cases:
            out = side.run(sys.executable, "-m", "taskq", "worker", "-A", "example_tasks:app", "-P", "solo",
                           "-n", side.name("bad"), *args)
            assert out.returncode == 2 and message in out.stderr, (args, out.stderr)
            assert "Traceback" not in out.stderr
    finally:
        busy.close()


@pytest.mark.parametrize("kind", ["sqlite", "redis"])
def test_prefetched_gauge_counts_messages_held_behind_a_long_task(kind: str, tmp_path: Path) -> None:
    # (RabbitMQ: how many messages one fetch takes from the channel is a race; see
    # test_monitoring_steering.py's reserved test)
    with fleet(kind, tmp_path) as side:
        port = free_port()
        queue = f"q-{side.token}"
        producer = side.producer()
        try:
            # Given a long task and three more waiting before a one-child prefork worker starts
            producer.send_task("example_tasks.sleep_then", ("long", 12), queue=queue)
            for i in range(3):
                producer.send_task("example_tasks.add", (i, i), queue=queue)
            side.taskq_worker("pre", "-c", "1", "--prefetch-multiplier", "4", "--metrics-port", str(port),
                              TASKQ_WORKER_HOLD_LIMIT="60")
            gauge = f'taskq_worker_prefetched_messages{{hostname="{side.name("pre")}"}}'
            # Then the scrape counts the three held behind the running one, and none once they ran
            wait_until(lambda: scrape(port).get(gauge) == 3, 30, "three prefetched")
            wait_until(lambda: scrape(port).get('taskq_tasks_total{state="SUCCESS",task="example_tasks.add"}') == 3,
                       60, "the held tasks ran")
            assert scrape(port)[gauge] == 0
        finally:
            producer.close()


def test_beat_lag_is_observed_for_each_submitted_instant(tmp_path: Path) -> None:
    with fleet("sqlite", tmp_path) as side:
        port = free_port()
        schedule = {"tick": {"task": "example_tasks.add", "schedule": 0.5, "args": [1, 1],
                             "options": {"queue": f"q-{side.token}"}}}
        # Given a prefork worker whose beat child submits an entry every half second
        side.taskq_worker("lag", "-c", "1", "-B", "--metrics-port", str(port), TASKQ_BEAT_SCHEDULE=json.dumps(schedule))
        # Then each submission is counted in the lag histogram, all but a stray one within 5 s of due
        wait_until(lambda: scrape(port).get("taskq_beat_lag_seconds_count", 0) >= 4, 30, "four beat submissions")
        values = scrape(port)
        assert values["taskq_beat_lag_seconds_sum"] >= 0
        assert values['taskq_beat_lag_seconds_bucket{le="5.0"}'] >= values["taskq_beat_lag_seconds_count"] - 1
        assert values['taskq_beat_lag_seconds_bucket{le="+Inf"}'] == values["taskq_beat_lag_seconds_count"]
