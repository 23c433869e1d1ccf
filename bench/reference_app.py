"""The bare-stack reference for the scale benchmark (issue 7): the limit of this stack.

A minimal Starlette app on the same server stack as the product (uvicorn, uvloop,
httptools, websockets) doing the least the product must do per inbound SMS:

* `POST /webhooks/twilio`: check X-Twilio-Signature with Twilio's own validator, insert
  one row with raw `aiosqlite` (WAL, synchronous=NORMAL like the product), commit, then
  fan the event out to the agent sockets and answer empty TwiML;
* `WS /ws/agent?token=T`: `{"type": "hello", "seq": N}`, then every event as
  `{"seq", "type": "message.created", "conversation_id", "message": {...}}`, the same shape
  the product sends, through one bounded queue and writer task per socket (the event is
  encoded once, not once per socket).

No ORM, no contacts or conversations, no responders, no rate limit, no replay. Run::

    REF_DB=/tmp/ref.db REF_TOKEN=t TWILIO_AUTH_TOKEN=x INBOX_PUBLIC_URL=http://127.0.0.1:8101 \\
        python -m uvicorn bench.reference_app:app --port 8101 --factory   # or: python -m bench.reference_app --port 8101
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import hmac
import json
import os
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import parse_qsl

import aiosqlite
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route, WebSocketRoute
from starlette.websockets import WebSocket, WebSocketDisconnect
from twilio.request_validator import RequestValidator

EMPTY_TWIML = '<?xml version="1.0" encoding="UTF-8"?><Response></Response>'
QUEUE_SIZE = 1000
SCHEMA = """
CREATE TABLE IF NOT EXISTS message (
    id INTEGER PRIMARY KEY,
    sender TEXT NOT NULL,
    provider_message_id TEXT NOT NULL UNIQUE,
    text TEXT NOT NULL,
    created_at REAL NOT NULL
)"""


def create_app() -> Starlette:
    db_path = os.environ.get("REF_DB", "/tmp/reference-bench.db")
    token = os.environ.get("REF_TOKEN", "reference-token")
    validator = RequestValidator(os.environ["TWILIO_AUTH_TOKEN"])
    public_url = os.environ.get("INBOX_PUBLIC_URL", "http://127.0.0.1:8101").rstrip("/")
    state: dict[str, Any] = {"seq": 0, "sockets": set()}

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        db = await aiosqlite.connect(db_path)
        await db.execute("PRAGMA journal_mode=WAL")
        await db.execute("PRAGMA synchronous=NORMAL")
        await db.execute(SCHEMA)
        await db.commit()
        cur = await db.execute("SELECT coalesce(max(id), 0) FROM message")
        state["seq"] = (await cur.fetchone())[0]
        state["db"] = db
        try:
            yield
        finally:
            await db.close()

    async def twilio(request: Request) -> Response:
        params = dict(parse_qsl((await request.body()).decode(), keep_blank_values=True))
        signature = request.headers.get("x-twilio-signature", "")
        if not validator.validate(public_url + request.url.path, params, signature):
            return Response("bad signature", status_code=403)
        db: aiosqlite.Connection = state["db"]
        cur = await db.execute(
            "INSERT INTO message (sender, provider_message_id, text, created_at) VALUES (?, ?, ?, "
            "julianday('now')) ON CONFLICT (provider_message_id) DO NOTHING",
            (params.get("From", ""), params.get("MessageSid", ""), params.get("Body", "")))
        await db.commit()
        if cur.rowcount:
            message_id = cur.lastrowid
            frame = json.dumps({"seq": message_id, "type": "message.created",
                                "conversation_id": 1, "message": {
                                    "id": message_id, "author": "customer",
                                    "text": params.get("Body", ""),
                                    "from": params.get("From", "")}},
                               separators=(",", ":"))
            for queue in list(state["sockets"]):
                try:
                    queue.put_nowait(frame)
                except asyncio.QueueFull:  # a slow socket stops receiving (loadgen counts it)
                    state["sockets"].discard(queue)
        return Response(EMPTY_TWIML, media_type="text/xml")

    async def agent(ws: WebSocket) -> None:
        if not hmac.compare_digest(ws.query_params.get("token", ""), token):
            await ws.close(code=4401)
            return
        await ws.accept()
        queue: asyncio.Queue[str] = asyncio.Queue(maxsize=QUEUE_SIZE)
        state["sockets"].add(queue)
        try:
            await ws.send_text(json.dumps({"type": "hello", "seq": state["seq"]}))

            async def writer() -> None:
                while True:
                    await ws.send_text(await queue.get())

            async def reader() -> None:
                while True:
                    message = await ws.receive()
                    if message["type"] == "websocket.disconnect":
                        return

            tasks = [asyncio.ensure_future(writer()), asyncio.ensure_future(reader())]
            _done, pending = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
            for task in pending:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
        except WebSocketDisconnect:
            pass
        finally:
            state["sockets"].discard(queue)

    async def healthz(request: Request) -> Response:
        return JSONResponse({"ok": True, "subscribers": len(state["sockets"])})

    return Starlette(routes=[
        Route("/webhooks/twilio", twilio, methods=["POST"]),
        Route("/healthz", healthz, methods=["GET"]),
        WebSocketRoute("/ws/agent", agent),
    ], lifespan=lifespan)


def main() -> None:
    import uvicorn

    parser = argparse.ArgumentParser()
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8101)
    args = parser.parse_args()
    os.environ.setdefault("INBOX_PUBLIC_URL", f"http://{args.host}:{args.port}")
    uvicorn.run("bench.reference_app:create_app", factory=True, host=args.host, port=args.port,
                log_level="warning", ws_max_size=65_536)


if __name__ == "__main__":
    main()
