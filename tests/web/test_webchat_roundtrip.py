"""Web chat end to end on a real server: customer socket -> agent socket -> reply -> customer."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import websockets

from tests.support.server import LiveServer


async def _next(ws: Any, kind: str, timeout: float = 5.0) -> dict[str, Any]:
    while True:
        frame = json.loads(await asyncio.wait_for(ws.recv(), timeout))
        if frame.get("type") == kind:
            return frame  # type: ignore[no-any-return]


async def test_webchat_message_reaches_agent_and_reply_reaches_visitor(
    server: LiveServer, agent_token: str
) -> None:
    async with websockets.connect(f"{server.ws_url}/ws/agent?token={agent_token}") as agent, \
            websockets.connect(f"{server.ws_url}/ws/chat") as visitor:
        await _next(agent, "hello")
        welcome = await _next(visitor, "welcome")
        assert welcome["messages"] == [] and welcome["token"]
        await visitor.send(json.dumps({"type": "message", "text": "Where is my order?", "client_id": "c1"}))
        own = await _next(visitor, "message")
        assert own["message"]["text"] == "Where is my order?"
        assert own["message"]["author"] == "customer"
        event = await _next(agent, "message.created")
        assert event["message"]["text"] == "Where is my order?"
        conversation_id = event["conversation_id"]

        resp = await server.client.post(f"/api/v1/conversations/{conversation_id}/messages",
                                        json={"text": "It ships today."},
                                        headers=server.auth(agent_token))
        assert resp.status_code == 201, resp.text
        answer = await _next(visitor, "message")
        assert answer["message"]["text"] == "It ships today."
        assert answer["message"]["author"] == "agent"

    # Reconnect with the token: the history comes back, in order.
    async with websockets.connect(f"{server.ws_url}/ws/chat?token={welcome['token']}") as again:
        back = await _next(again, "welcome")
        assert back["conversation_id"] == conversation_id
        assert [m["text"] for m in back["messages"]] == ["Where is my order?", "It ships today."]


async def test_webchat_resend_with_same_client_id_stores_one_message(
    server: LiveServer, agent_token: str
) -> None:
    async with websockets.connect(f"{server.ws_url}/ws/chat") as visitor:
        await _next(visitor, "welcome")
        for _ in range(2):
            await visitor.send(json.dumps({"type": "message", "text": "hello", "client_id": "same"}))
        await _next(visitor, "message")
        await asyncio.sleep(0.3)
    resp = await server.client.get("/api/v1/conversations", headers=server.auth(agent_token))
    (conv,) = resp.json()["items"]
    detail = await server.client.get(f"/api/v1/conversations/{conv['id']}", headers=server.auth(agent_token))
    assert [m["text"] for m in detail.json()["messages"]] == ["hello"]
