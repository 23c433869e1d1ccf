"""Web chat beyond the round trip: a visitor's email joins their customer profile, and a
forged or foreign token never resumes anyone's conversation."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
import websockets
from itsdangerous import URLSafeSerializer

from inbox import pipeline
from inbox.types import Inbound, ThreadHints
from tests.inbox.fast_db import admin_token, agent_token, database_url, sqlite_template  # noqa: F401
from tests.support.server import LiveServer

pytestmark = pytest.mark.e2e


async def next_frame(ws: Any, kind: str, timeout: float = 10.0) -> dict[str, Any]:
    async with asyncio.timeout(timeout):
        while True:
            frame: dict[str, Any] = json.loads(await ws.recv())
            if frame.get("type") == kind:
                return frame


async def contact_event(agent: Any, kind: str, timeout: float = 10.0) -> dict[str, Any]:
    """The next contact.updated event showing an identity of `kind`."""
    async with asyncio.timeout(timeout):
        while True:
            frame = await next_frame(agent, "contact.updated")
            if any(i["kind"] == kind for i in frame["contact"]["identities"]):
                return frame


async def say(visitor: Any, text: str, client_id: str) -> dict[str, Any]:
    await visitor.send(json.dumps({"type": "message", "text": text, "client_id": client_id}))
    return await next_frame(visitor, "message")


async def test_visitor_email_joins_their_contact_and_is_case_folded(
    server: LiveServer, agent_token: str
) -> None:
    async with websockets.connect(f"{server.ws_url}/ws/agent?token={agent_token}") as agent, \
            websockets.connect(f"{server.ws_url}/ws/chat") as visitor:
        await next_frame(agent, "hello")
        await next_frame(visitor, "welcome")
        own = await say(visitor, "Do you ship to Canada?", "c1")
        await visitor.send(json.dumps({"type": "identify", "email": " Maria.Lopez@Example.COM ",
                                       "name": "Maria"}))
        event = await contact_event(agent, "email")

    contact = event["contact"]
    assert contact["name"] == "Maria"
    values = {i["kind"]: i["value"] for i in contact["identities"]}
    assert len(contact["identities"]) == 2
    assert values["email"] == "maria.lopez@example.com" and values["webchat"].startswith("v_")
    detail = await server.client.get(f"/api/v1/conversations/{own['conversation_id']}",
                                     headers=server.auth(agent_token))
    assert detail.json()["contact"]["id"] == contact["id"]


async def test_visitor_email_of_a_known_customer_joins_that_customers_contact(
    server: LiveServer, agent_token: str
) -> None:
    by_mail = await pipeline.ingest(server.rt, Inbound(
        channel="email", provider="email", provider_message_id="<known@mail.example>",
        sender="maria@example.com", sender_kind="email", text="Order 1001?", display_name="Maria Lopez",
        thread=ThreadHints(message_id="<known@mail.example>", subject="Order 1001")))
    async with websockets.connect(f"{server.ws_url}/ws/agent?token={agent_token}") as agent, \
            websockets.connect(f"{server.ws_url}/ws/chat") as visitor:
        await next_frame(agent, "hello")
        await next_frame(visitor, "welcome")
        own = await say(visitor, "It's me again, on the website", "c1")
        await visitor.send(json.dumps({"type": "identify", "email": "MARIA@example.com"}))
        event = await contact_event(agent, "webchat")

    assert event["contact"]["id"] == by_mail.contact_id
    assert {i["kind"] for i in event["contact"]["identities"]} == {"email", "webchat"}
    contact = (await server.client.get(f"/api/v1/contacts/{by_mail.contact_id}",
                                       headers=server.auth(agent_token))).json()
    assert {c["id"] for c in contact["conversations"]} == {by_mail.conversation_id, own["conversation_id"]}
    assert {c["channel"] for c in contact["conversations"]} == {"email", "webchat"}


async def test_identify_with_something_that_is_not_an_email_is_an_error_frame(
    server: LiveServer,
) -> None:
    async with websockets.connect(f"{server.ws_url}/ws/chat") as visitor:
        await next_frame(visitor, "welcome")
        await say(visitor, "hello", "c1")
        await visitor.send(json.dumps({"type": "identify", "email": "not an address"}))
        error = await next_frame(visitor, "error")
        assert error["error"] == "bad_input" and "email" in error["detail"]
        # The socket stays usable.
        assert (await say(visitor, "still here", "c2"))["message"]["text"] == "still here"


async def test_forged_token_gets_a_new_visitor_and_no_history(server: LiveServer) -> None:
    async with websockets.connect(f"{server.ws_url}/ws/chat") as first:
        welcome = await next_frame(first, "welcome")
        await say(first, "my private question", "c1")
    real = welcome["token"]

    foreign_key = URLSafeSerializer("some-other-secret", salt="webchat-visitor")
    for forged in (real[:-2] + ("AA" if not real.endswith("AA") else "BB"),
                   "v_" + "x" * 16,
                   foreign_key.dumps("v_someone"),
                   "not-a-token-at-all"):
        async with websockets.connect(f"{server.ws_url}/ws/chat?token={forged}") as ws:
            fresh = await next_frame(ws, "welcome")
        assert fresh["token"] not in (real, forged)
        assert fresh["conversation_id"] is None and fresh["messages"] == []

    # The genuine token still resumes the conversation.
    async with websockets.connect(f"{server.ws_url}/ws/chat?token={real}") as again:
        back = await next_frame(again, "welcome")
    assert [m["text"] for m in back["messages"]] == ["my private question"]


async def test_visitors_never_see_each_others_messages(server: LiveServer, agent_token: str) -> None:
    async with websockets.connect(f"{server.ws_url}/ws/chat") as alice, \
            websockets.connect(f"{server.ws_url}/ws/chat") as bob:
        await next_frame(alice, "welcome")
        await next_frame(bob, "welcome")
        await say(alice, "alice's question", "a1")
        mine = await say(bob, "bob's question", "b1")
        # An agent note in bob's conversation is private: never shown to bob either.
        await server.client.post(f"/api/v1/conversations/{mine['conversation_id']}/notes",
                                 json={"text": "internal"}, headers=server.auth(agent_token))
        reply = await server.client.post(f"/api/v1/conversations/{mine['conversation_id']}/messages",
                                         json={"text": "for bob"}, headers=server.auth(agent_token))
        assert reply.status_code == 201
        assert (await next_frame(bob, "message"))["message"]["text"] == "for bob"
        with pytest.raises(TimeoutError):
            await next_frame(alice, "message", timeout=0.5)


async def test_email_left_before_the_first_message_is_kept(server: LiveServer, agent_token: str) -> None:
    async with websockets.connect(f"{server.ws_url}/ws/agent?token={agent_token}") as agent, \
            websockets.connect(f"{server.ws_url}/ws/chat") as visitor:
        await next_frame(agent, "hello")
        await next_frame(visitor, "welcome")
        await visitor.send(json.dumps({"type": "identify", "email": "early@example.com"}))
        await contact_event(agent, "email")
        own = await say(visitor, "Now my question", "c1")
    detail = (await server.client.get(f"/api/v1/conversations/{own['conversation_id']}",
                                      headers=server.auth(agent_token))).json()
    assert {(i["kind"], i["value"]) for i in detail["contact"]["identities"]} >= {("email", "early@example.com")}
