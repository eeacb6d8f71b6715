"""The dashboard's HTTP side on Starlette: pages, the live stream (server-sent events), the
actions (POST only, CSRF-checked) and ``/metrics``."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import parse_qsl

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, PlainTextResponse, Response, StreamingResponse
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from taskq.dashboard import views
from taskq.dashboard.actions import ACTIONS, ActionError, Actions
from taskq.dashboard.feed import Feed
from taskq.dashboard.markup import Safe, render
from taskq.dashboard.metrics import create_metrics
from taskq.dashboard.security import CSRF_FIELD, CSRF_HEADER, ASGIApp, Security
from taskq.dashboard.state import FleetState, TaskFilter

if TYPE_CHECKING:
    from taskq.app import TaskQ

STATIC = Path(__file__).parent / "static"
STREAM_INTERVAL = 0.25  # seconds between checks for a change to send
KEEPALIVE = 15.0  # seconds of silence before a comment line keeps proxies from closing the stream


def create_app(
    app: TaskQ, security: Security | None = None, refresh: float = 1.0, state: FleetState | None = None,
    feed: bool = True,
) -> ASGIApp:
    """The ASGI application. ``feed=False`` leaves ``state`` to the caller (tests feed it)."""
    security = security or Security()
    state = state or FleetState()
    actions = Actions(app, state)
    metrics = create_metrics(state)

    def session(request: Request) -> str:
        return str(request.scope.get("state", {}).get("session", ""))

    def csrf(request: Request) -> str:
        return security.csrf_for(session(request))

    async def main_page(request: Request) -> Response:
        return HTMLResponse(views.main_page(state, task_filter(request), csrf(request)))

    async def task_page(request: Request) -> Response:
        return HTMLResponse(views.detail_page(state, request.path_params["task_id"], csrf(request)))

    async def stream(request: Request) -> Response:
        token = csrf(request)
        if request.query_params.get("view") == "task":
            fragments = views.detail_fragments(state, request.query_params.get("id", ""), token)
        else:
            fragments = views.main_fragments(state, task_filter(request), token)
        return StreamingResponse(
            fragment_events(state, fragments), media_type="text/event-stream",
            headers={"X-Accel-Buffering": "no"},
        )

    async def action(request: Request) -> Response:
        name = request.path_params["name"]
        values = await form_values(request)
        wants_json = request.headers.get("x-requested-with") == "fetch"
        if not security.csrf_ok(session(request), values.get(CSRF_FIELD) or request.headers.get(CSRF_HEADER)):
            return outcome("CSRF token missing or wrong: reload the page and try again", 403, wants_json)
        if name not in ACTIONS:
            return outcome(f"no action {name}", 404, wants_json)
        try:
            message = await run_in_threadpool(actions.run, name, values)
        except ActionError as exc:
            return outcome(str(exc), 400, wants_json)
        return outcome(message, 200, wants_json)

    async def metrics_page(request: Request) -> Response:
        if metrics is None:
            return PlainTextResponse("/metrics needs prometheus_client: pip install 'taskq[dashboard]'\n", 501)
        body, content_type = metrics.exposition()
        return Response(body, media_type=content_type)

    @asynccontextmanager
    async def lifespan(_: Starlette) -> AsyncIterator[None]:
        running = Feed(app, state, refresh) if feed else None
        if running is not None:
            running.start()
        try:
            yield
        finally:
            if running is not None:
                await run_in_threadpool(running.stop)

    routes = [
        Route("/", main_page, methods=["GET"]),
        Route("/tasks/{task_id}", task_page, methods=["GET"]),
        Route("/stream", stream, methods=["GET"]),
        Route("/actions/{name}", action, methods=["POST"]),
        Route("/metrics", metrics_page, methods=["GET"]),
        Mount("/static", StaticFiles(directory=STATIC), name="static"),
    ]
    web = Starlette(routes=routes, lifespan=lifespan)
    return security.middleware(web)


async def form_values(request: Request) -> dict[str, str]:
    """An url-encoded form (what the page's forms and script send), read without python-multipart;
    any other body reads as empty, and so fails the CSRF check."""
    if request.headers.get("content-type", "").split(";")[0].strip() != "application/x-www-form-urlencoded":
        return {}
    body = await request.body()
    return dict(parse_qsl(body.decode("utf-8", "replace"), keep_blank_values=True))


def task_filter(request: Request) -> TaskFilter:
    q = request.query_params
    return TaskFilter(q.get("state", ""), q.get("name", "").strip(), q.get("queue", "").strip(),
                      q.get("worker", "").strip())


def outcome(message: str, status: int, as_json: bool) -> Response:
    """An action's answer: JSON for the page's script, else a small page (forms without script)."""
    if as_json:
        return JSONResponse({"ok": status == 200, "message": message}, status_code=status)
    body = render('<!doctype html><meta charset="utf-8"><title>taskq</title><p>{m}</p><p><a href="/">back</a></p>',
                  m=message)
    return HTMLResponse(body, status_code=status)


async def fragment_events(
    state: FleetState, fragments: dict[str, Callable[[], Safe]], interval: float = STREAM_INTERVAL
) -> AsyncIterator[str]:
    """Each fragment whose HTML changed since it was last sent, as ``event: fragment``; the
    first round sends them all (the page may be older than the stream)."""
    sent: dict[str, str] = {}
    seen_version = -1
    quiet_since = time.monotonic()
    while True:
        if state.version != seen_version:
            seen_version = state.version
            for key, render_fragment in fragments.items():
                html = render_fragment()
                if sent.get(key) != html:
                    sent[key] = html
                    quiet_since = time.monotonic()
                    yield f"event: fragment\ndata: {json.dumps({'id': key, 'html': html})}\n\n"
        if time.monotonic() - quiet_since > KEEPALIVE:
            quiet_since = time.monotonic()
            yield ": keepalive\n\n"
        await asyncio.sleep(interval)

