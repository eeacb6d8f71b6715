"""A beat whose Redis (store and broker) restarts keeps going: it logs the outage, sends
nothing twice, and sends the instants that fell in the outage late once Redis is back.
Runs on a private redis-server on a free port; the shared server is never touched."""

from __future__ import annotations

import json
import time
import uuid
from pathlib import Path

import pytest

from taskq.config import Settings
from tests.contract.redis_factories import ThrowawayRedis
from tests.integration.test_beat_processes import Setup, base_env, instants_of, role, wait_until


@pytest.mark.slow
def test_beat_survives_a_redis_restart_without_duplicates(tmp_path: Path) -> None:
    (tmp_path / "redis").mkdir()
    server = ThrowawayRedis(tmp_path / "redis")
    server.start()
    setup = None
    try:
        options = {"global_keyprefix": f"beat-restart-{uuid.uuid4().hex[:6]}:"}
        env = base_env(
            tmp_path,
            TASKQ_BROKER_URL=server.url,
            TASKQ_RESULT_BACKEND="none",
            TASKQ_BROKER_TRANSPORT_OPTIONS=json.dumps(options),
        )
        setup = Setup(tmp_path, env, Settings(broker_url=server.url, broker_transport_options=options))
        # Given a leading beat that has sent a few instants
        _, heartbeat = setup.start_beat("beat")
        wait_until(lambda: role(heartbeat) == "leader", 20, "the beat to lead")
        wait_until(lambda: setup.log("beat").count("beat: sent") >= 2, 20, "two sends")
        # When Redis goes away for a few seconds and comes back with its data
        server.stop(kill=True)
        wait_until(lambda: "beat: " in setup.log("beat") and "Error" in setup.log("beat"), 20, "the outage logged")
        time.sleep(2)  # the outage being simulated
        server.start()
        before = setup.log("beat").count("beat: sent")
        wait_until(lambda: setup.log("beat").count("beat: sent") >= before + 3, 30, "sends after the restart")
        setup.stop_all()
        # Then the process lived through it and nothing was sent twice; the outage's
        # instants came late (the entry does not coalesce), at most one lost mid-send
        instants = instants_of(setup.drain())
        assert len(set(instants)) == len(instants), "an instant was enqueued twice"
        gaps = (instants[-1] - instants[0]).total_seconds() + 1 - len(instants)
        assert gaps <= 1, f"{gaps} instants missing:\n{setup.log('beat')}"
    finally:
        if setup is not None:
            setup.stop_all()
        server.stop()
