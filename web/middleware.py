"""Pure ASGI middleware: security headers on every HTTP response; sessions except where
no browser comes (provider webhooks), and without a wrapped `send` on websockets."""

from __future__ import annotations

import json
from base64 import b64decode
from typing import Any

from itsdangerous.exc import BadSignature
from starlette.middleware.sessions import Session, SessionMiddleware
from starlette.requests import HTTPConnection
from starlette.types import ASGIApp, Message, Receive, Scope, Send

_HEADERS = [
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"same-origin"),
    (b"x-frame-options", b"DENY"),
]
# Pages load only our own scripts and styles; customer HTML is shown in sandboxed frames
# (which inherit this policy), where remote https images load only after an agent's click.
_CSP = (b"content-security-policy",
        b"default-src 'self'; img-src 'self' data: blob: https:; style-src 'self'; script-src 'self'; "
        b"connect-src 'self' ws: wss:; frame-src 'self' blob: data:; frame-ancestors 'none'; "
        b"base-uri 'none'; form-action 'self'")


class SecurityHeaders:
    """Adds nosniff, framing and referrer headers, and a CSP on HTML pages."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                names = {name.lower() for name, _ in headers}
                for name, value in _HEADERS:
                    if name not in names:
                        headers.append((name, value))
                ctype = next((v for n, v in headers if n.lower() == b"content-type"), b"")
                if ctype.startswith(b"text/html") and b"content-security-policy" not in names:
                    headers.append(_CSP)
                message["headers"] = headers
            await send(message)

        await self.app(scope, receive, send_with_headers)


class SessionsExcept:
    """Starlette's `SessionMiddleware`, except on paths starting with one of `skip`.

    Provider webhooks carry no session cookie and read no session: for them the cookie
    parsing and the wrapped `send` are pure cost (the busiest path of all). A handler
    there that touched `request.session` would fail loudly (no session installed).
    Websockets get their session as `SessionMiddleware` reads it, but their `send`
    unwrapped: a websocket never sets a cookie, and the wrapper was a call more on
    every event frame to every agent socket.
    """

    def __init__(self, app: ASGIApp, *, skip: tuple[str, ...], **options: Any) -> None:
        self.app = app
        self.skip = skip
        self.sessions = SessionMiddleware(app, **options)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind == "websocket":
            scope["session"] = self._read(scope)
            await self.app(scope, receive, send)
        elif kind == "http" and scope["path"].startswith(self.skip):
            await self.app(scope, receive, send)
        else:
            await self.sessions(scope, receive, send)

    def _read(self, scope: Scope) -> Session:
        """The session in the request's cookie, as `SessionMiddleware` reads it (empty
        when there is none or its signature is wrong)."""
        sessions = self.sessions
        cookie = HTTPConnection(scope).cookies.get(sessions.session_cookie)
        if cookie is None:
            return Session()
        try:
            data = sessions.signer.unsign(cookie.encode("utf-8"), max_age=sessions.max_age)
        except BadSignature:
            return Session()
        return Session(json.loads(b64decode(data)))
