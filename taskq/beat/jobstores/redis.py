"""RedisJobStore: jobs in Redis (taskq's Redis schedule store), with APScheduler's
connection keywords or a URL."""

from __future__ import annotations

from urllib.parse import quote

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
            # Percent-encoded: a "/", "@" or "#" in a password would otherwise end the netloc.
            auth = f":{quote(password, safe='')}@" if password else ""
            url = f"redis://{auth}{host}:{port}/{db}"
        if prefix:
            url += ("&" if "?" in url else "?") + f"prefix={quote(prefix, safe='')}"
        super().__init__(url)
