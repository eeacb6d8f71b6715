"""The built-in web dashboard (``taskq dashboard``, ``taskq worker --dashboard``).

* state.py: what is known of workers, tasks, queues, dead letters and beat entries;
* feed.py: the threads that keep it current (events; broker and schedule-store polling);
* actions.py: revoke, retry, requeue and purge dead letters, pause and resume beat entries;
* markup.py, views.py: server-rendered HTML, every value escaped;
* routes.py: the Starlette app (pages, the server-sent-event stream, actions, /metrics);
* security.py: bind rules, authentication, CSRF, security headers;
* server.py: running it under uvicorn, alone or beside a worker.

Needs ``pip install 'taskq[dashboard]'`` (Starlette, uvicorn, prometheus_client).
"""

from __future__ import annotations

from taskq.dashboard.server import DEFAULT_BIND, DEFAULT_PORT, Options

__all__ = ["DEFAULT_BIND", "DEFAULT_PORT", "Options"]
