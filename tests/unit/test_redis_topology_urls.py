"""redis+cluster:// and redis+sentinel:// URLs: parsed without I/O, one clear error each."""

from __future__ import annotations

import pytest

from taskq import TaskQ
from taskq.brokers.redis.urls import Topology, parse_topology
from taskq.config import Settings
from taskq.errors import ConfigurationError


def test_cluster_and_sentinel_urls_are_parsed() -> None:
    assert parse_topology("redis+cluster://127.0.0.1:7000,[::1]:7001/0") == Topology(
        "redis+cluster", (("127.0.0.1", 7000), ("::1", 7001)), None, None, "", 0
    )
    assert parse_topology("redis+sentinel://user:p%40ss@s1:26379,s2:26380/mymaster/3") == Topology(
        "redis+sentinel", (("s1", 26379), ("s2", 26380)), "user", "p@ss", "mymaster", 3
    )


@pytest.mark.parametrize(
    ("url", "text"),
    [
        ("redis+cluster://h:70000", "each host must be host:port"),
        ("redis+cluster://h:1,h", "each host must be host:port"),
        ("redis+cluster://h:1/2", "database 0 only"),
        ("redis+cluster://h:1?socket_timeout=2", "takes no query options"),
        ("redis+sentinel://h:26379", "name the master"),
        ("redis+sentinel://h:26379/mymaster/x", "must end with a database number"),
        ("redis+sentinel://h:26379/mymaster/1/2", "must end with a database number"),
    ],
)
def test_bad_clustered_urls(url: str, text: str) -> None:
    with pytest.raises(ConfigurationError, match=text):
        TaskQ("x", broker=url).check()
    with pytest.raises(ConfigurationError, match=text):
        TaskQ("x", broker="memory://", backend=url).check()


def test_the_broker_cluster_keeps_results_and_the_schedule_by_default() -> None:
    for url in ("redis+cluster://h:1,h:2", "redis+sentinel://h:26379/m/0"):
        settings = Settings(broker_url=url)
        assert settings.result_backend_url == url
        assert settings.beat_store == url
        TaskQ("x", broker=url).check()
