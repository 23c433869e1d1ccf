"""A real HTTP server on 127.0.0.1 that records every request: the base of our provider fakes.

The server runs in a daemon thread, so it serves sync tests, async tests (any event loop)
and a separately started app alike. A request is recorded *before* it is answered, so
once a client has its response, `requests` already holds the request.

API shared by every recorder::

    rec = SomeRecorder().start()        # or: with SomeRecorder() as rec: ...
    rec.base_url                        # http://127.0.0.1:<free port>[/prefix]
    rec.requests                        # [RecordedRequest(method, path, query, form, ...)]
    rec.fail_next(429, headers={"Retry-After": "3"})   # queue canned answers, FIFO
    rec.fail_next(400, code=21610, message="unsubscribed")
    rec.disconnect_next()               # drop the connection unanswered (network error)
    rec.wait_for(2)                     # block until 2 requests arrived (or AssertionError)
    await rec.wait_for_async(2)         # the same from a coroutine, without blocking the loop
    rec.clear(); rec.stop()

Subclasses implement `respond(request)` (the provider's happy path) and `error_body`
(the provider's error shape).
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Self
from urllib.parse import parse_qs, urlsplit


@dataclass(frozen=True, slots=True)
class RecordedRequest:
    """One request as the server saw it; header names are lower-case."""

    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    body: bytes
    form: dict[str, list[str]] = field(default_factory=dict)

    def first(self, key: str, default: str | None = None) -> str | None:
        """The first value of form field `key` (falls back to the query string)."""
        values = self.form.get(key) or self.query.get(key)
        return values[0] if values else default

    @property
    def json(self) -> Any:
        """The body decoded as JSON (raises ValueError when it is not JSON)."""
        return json.loads(self.body)


@dataclass(frozen=True, slots=True)
class Reply:
    """A response the server sends: status, body bytes, headers."""

    status: int
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)

    @classmethod
    def json(cls, status: int, payload: Any, headers: dict[str, str] | None = None) -> Reply:
        """A JSON reply."""
        return cls(status, json.dumps(payload).encode(),
                   {"Content-Type": "application/json", **(headers or {})})


_DISCONNECT = Reply(status=-1)


class RecordingServer:
    """Base class: a threaded HTTP server that records requests and answers via `respond`."""

    prefix = ""  # a path prefix included in base_url (e.g. Graph's "/v21.0")

    def __init__(self, host: str = "127.0.0.1", port: int = 0) -> None:
        self._address = (host, port)
        self._lock = threading.Lock()
        self._arrived = threading.Condition(self._lock)
        self._requests: list[RecordedRequest] = []
        self._canned: deque[Reply] = deque()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle -------------------------------------------------------------------
    def start(self) -> Self:
        """Bind a free port and serve in a daemon thread; returns self."""
        if self._server is not None:
            return self
        server = ThreadingHTTPServer(self._address, _handler_for(self))
        server.daemon_threads = True
        self._server = server
        self._thread = threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": 0.02},  # fast stop()
            name=type(self).__name__, daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and free the port (idempotent)."""
        server, self._server = self._server, None
        if server is not None:
            server.shutdown()
            server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def root_url(self) -> str:
        """http://127.0.0.1:<port>, without the prefix."""
        if self._server is None:
            raise RuntimeError(f"{type(self).__name__} is not started")
        port = self._server.server_address[1]
        return f"http://{self._address[0]}:{port}"

    @property
    def base_url(self) -> str:
        """The URL to configure the client under test with."""
        return self.root_url + self.prefix

    # -- recording -------------------------------------------------------------------
    @property
    def requests(self) -> list[RecordedRequest]:
        """A snapshot of every request received so far, in arrival order."""
        with self._lock:
            return list(self._requests)

    def clear(self) -> None:
        """Forget recorded requests and queued failures."""
        with self._lock:
            self._requests.clear()
            self._canned.clear()

    def wait_for(self, count: int, timeout: float = 5.0) -> list[RecordedRequest]:
        """Block until at least `count` requests arrived; AssertionError on timeout."""
        deadline = time.monotonic() + timeout
        with self._arrived:
            while len(self._requests) < count:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(
                        f"expected {count} requests within {timeout}s, got {len(self._requests)}"
                    )
                self._arrived.wait(left)
            return list(self._requests)

    async def wait_for_async(self, count: int, timeout: float = 5.0) -> list[RecordedRequest]:
        """Like `wait_for`, polling so the event loop keeps running."""
        deadline = time.monotonic() + timeout
        while len(self.requests) < count:
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"expected {count} requests within {timeout}s, got {len(self.requests)}"
                )
            await asyncio.sleep(0.01)
        return self.requests

    # -- programming failures --------------------------------------------------------
    def fail_next(
        self,
        status: int,
        body: dict[str, Any] | str | bytes | None = None,
        *,
        headers: dict[str, str] | None = None,
        code: int | None = None,
        message: str | None = None,
        times: int = 1,
    ) -> None:
        """Answer the next `times` requests with `status` instead of the happy path.

        `body` may be a dict (sent as JSON), text or bytes; when None, the provider's own
        error shape is built from `code` and `message` (see `error_body`).
        """
        if body is None:
            payload: bytes = json.dumps(self.error_body(status, code, message)).encode()
        elif isinstance(body, dict):
            payload = json.dumps(body).encode()
        else:
            payload = body.encode() if isinstance(body, str) else body
        reply = Reply(status, payload, {"Content-Type": "application/json", **(headers or {})})
        with self._lock:
            self._canned.extend([reply] * times)

    def disconnect_next(self, times: int = 1) -> None:
        """Close the next `times` connections without answering (a network failure)."""
        with self._lock:
            self._canned.extend([_DISCONNECT] * times)

    # -- for subclasses ----------------------------------------------------------------
    def respond(self, request: RecordedRequest) -> Reply:
        """The provider's normal answer to `request`."""
        return Reply.json(404, {"error": "not found"})

    def error_body(self, status: int, code: int | None, message: str | None) -> dict[str, Any]:
        """The provider's error payload for a canned failure."""
        return {"status": status, "code": code or status, "message": message or "error"}

    # -- internals -------------------------------------------------------------------
    def _record(self, request: RecordedRequest) -> Reply:
        with self._arrived:
            self._requests.append(request)
            canned = self._canned.popleft() if self._canned else None
            self._arrived.notify_all()
        return canned if canned is not None else self.respond(request)


def _handler_for(recorder: RecordingServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        # HTTP/1.0: one request per connection, so a dropped connection is unambiguous.
        protocol_version = "HTTP/1.0"

        def _serve(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            parts = urlsplit(self.path)
            headers = {k.lower(): v for k, v in self.headers.items()}
            form: dict[str, list[str]] = {}
            if headers.get("content-type", "").startswith("application/x-www-form-urlencoded"):
                form = parse_qs(body.decode("utf-8"), keep_blank_values=True)
            request = RecordedRequest(
                method=self.command,
                path=parts.path,
                query=parse_qs(parts.query, keep_blank_values=True),
                headers=headers,
                body=body,
                form=form,
            )
            try:
                reply = recorder._record(request)
            except Exception as exc:  # a bug in the fake: say so instead of hanging
                reply = Reply.json(500, {"fake_error": repr(exc)})
            if reply is _DISCONNECT:
                self.close_connection = True
                self.connection.close()
                return
            self.send_response(reply.status)
            for name, value in reply.headers.items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(reply.body)))
            self.end_headers()
            self.wfile.write(reply.body)

        do_GET = do_POST = do_PUT = do_DELETE = _serve

        def log_message(self, format: str, *args: Any) -> None:  # quiet test output
            pass

    return Handler
