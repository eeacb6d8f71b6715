"""Who may use the dashboard, and proof that an action came from its own page.

* Binding: loopback by default; any other address needs ``--auth user:password`` (HTTP Basic)
  or ``--token`` (``Authorization: Bearer``, or once ``?token=`` in a browser, which leaves a
  cookie holding an HMAC of it and redirects to the same address without the token).
  ``bind_problem`` says why a configuration may not start.
* CSRF: each browser gets a random session cookie (HttpOnly, SameSite=Strict); its forms carry
  ``csrf_token`` = HMAC(secret, session), checked on every POST (``csrf_ok``). Actions are
  POST-only routes, so a GET on one is 405.
* Every response forbids inline scripts and framing (CSP, X-Frame-Options), a second fence
  behind the escaping of every value the pages show.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import ipaddress
import secrets
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any
from urllib.parse import parse_qs, parse_qsl, urlencode

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

SESSION_COOKIE = "taskq_dashboard_session"
TOKEN_COOKIE = "taskq_dashboard_token"
CSRF_FIELD = "csrf_token"
CSRF_HEADER = "x-csrf-token"
HEADERS = (
    (b"content-security-policy",
     b"default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; frame-ancestors 'none'"),
    (b"x-frame-options", b"DENY"),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
    (b"cache-control", b"no-store"),
)


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def bind_problem(bind: str, auth: str | None, token: str | None) -> str | None:
    """Why the dashboard may not start with these options, in one line; None when it may."""
    if auth is not None:
        user, sep, password = auth.partition(":")
        if not sep or not user or not password:
            return "--auth must be user:password (both non-empty)"
    if token is not None and len(token) < 8:
        return "--token must be at least 8 characters"
    if not is_loopback(bind) and not auth and not token:
        return f"--bind {bind} is reachable from other hosts: give --auth user:password or --token (or bind 127.0.0.1)"
    return None


class Security:
    def __init__(self, auth: str | None = None, token: str | None = None, secret: bytes | None = None) -> None:
        self.auth = auth
        self.token = token
        self.secret = secret or secrets.token_bytes(32)

    def _mac(self, value: str) -> str:
        return hmac.new(self.secret, value.encode(), hashlib.sha256).hexdigest()

    def csrf_for(self, session: str) -> str:
        return self._mac("csrf:" + session)

    def csrf_ok(self, session: str | None, given: str | None) -> bool:
        return bool(session and given) and hmac.compare_digest(self.csrf_for(str(session)), str(given))

    def authorized(self, headers: dict[str, str], cookies: dict[str, str], query_token: str | None) -> bool:
        if not self.auth and not self.token:
            return True
        header = headers.get("authorization", "")
        scheme, _, value = header.partition(" ")
        if self.auth and scheme.lower() == "basic":
            try:
                given = base64.b64decode(value.strip(), validate=True).decode()
            except (binascii.Error, UnicodeDecodeError):
                given = ""
            if hmac.compare_digest(given.encode(), self.auth.encode()):
                return True
        if self.token:
            candidates = [value.strip() if scheme.lower() == "bearer" else "", query_token or ""]
            if any(hmac.compare_digest(c.encode(), self.token.encode()) for c in candidates):
                return True
            cookie = cookies.get(TOKEN_COOKIE, "")
            if cookie and hmac.compare_digest(cookie, self._mac("token:" + self.token)):
                return True
        return False

    def middleware(self, app: ASGIApp) -> ASGIApp:
        """Authentication, the session cookie and the security headers around ``app``."""

        async def guarded(scope: Scope, receive: Receive, send: Send) -> None:
            if scope["type"] != "http":
                await app(scope, receive, send)
                return
            headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", [])}
            cookies = parse_cookies(headers.get("cookie", ""))
            query_token = (parse_qs(scope.get("query_string", b"").decode("latin-1")).get("token") or [None])[0]
            if not self.authorized(headers, cookies, query_token):
                await _deny(send, self.auth is not None)
                return
            session = cookies.get(SESSION_COOKIE)
            new_cookies: list[str] = []
            if not session:
                session = secrets.token_urlsafe(24)
                new_cookies.append(f"{SESSION_COOKIE}={session}; Path=/; HttpOnly; SameSite=Strict")
            if self.token and query_token and hmac.compare_digest(query_token.encode(), self.token.encode()):
                # Remembered in a cookie (Lax: a link from elsewhere still opens the page), and
                # taken out of the address bar and history at once.
                remembered = self._mac("token:" + self.token)
                new_cookies.append(f"{TOKEN_COOKIE}={remembered}; Path=/; HttpOnly; SameSite=Lax")
                if scope.get("method") == "GET":
                    await _redirect(send, _without_token(scope), new_cookies)
                    return
            scope.setdefault("state", {})["session"] = session

            async def send_with_headers(message: Message) -> None:
                if message["type"] == "http.response.start":
                    extra = [(b"set-cookie", c.encode()) for c in new_cookies]
                    message["headers"] = [*message.get("headers", []), *HEADERS, *extra]
                await send(message)

            await app(scope, receive, send_with_headers)

        return guarded


def parse_cookies(header: str) -> dict[str, str]:
    cookies: dict[str, str] = {}
    for part in header.split(";"):
        name, sep, value = part.strip().partition("=")
        if sep:
            cookies[name] = value
    return cookies


def _without_token(scope: Scope) -> str:
    kept = [(k, v) for k, v in parse_qsl(scope.get("query_string", b"").decode("latin-1"), keep_blank_values=True)
            if k != "token"]
    return str(scope.get("path") or "/") + (f"?{urlencode(kept)}" if kept else "")


async def _redirect(send: Send, location: str, cookies: list[str]) -> None:
    headers = [(b"location", location.encode("latin-1", "replace")), *HEADERS]
    headers += [(b"set-cookie", c.encode()) for c in cookies]
    await send({"type": "http.response.start", "status": 303, "headers": headers})
    await send({"type": "http.response.body", "body": b""})


async def _deny(send: Send, basic: bool) -> None:
    headers = [(b"content-type", b"text/plain; charset=utf-8"), *HEADERS]
    if basic:
        headers.append((b"www-authenticate", b'Basic realm="taskq dashboard", charset="UTF-8"'))
    await send({"type": "http.response.start", "status": 401, "headers": headers})
    await send({"type": "http.response.body", "body": b"authentication required\n"})
