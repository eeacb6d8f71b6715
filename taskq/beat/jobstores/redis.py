"""RedisJobStore: jobs in Redis (taskq's Redis schedule store), with APScheduler's
connection keywords or a URL."""

from __future__ import annotations

from taskq.beat.core.stores.redis import RedisScheduleStore


class RedisJobStore(RedisScheduleStore):
    persistent = True

    def __init__(
        self,
        url: str | None = None,
        *,
        host: str = "localhost",
        port: int = 6379,
        db: int = 0,
        password: str | None = None,
        prefix: str | None = None,
    ) -> None:
        if url is None:
            auth = f":{password}@" if password else ""
            url = f"redis://{auth}{host}:{port}/{db}"
        if prefix:
            url += ("&" if "?" in url else "?") + f"prefix={prefix}"
        super().__init__(url)
