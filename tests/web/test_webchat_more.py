"""Web chat beyond the round trip: an email a visitor types is only a claim (late replies
go there; it joins no profile and links no orders), an email the shop signed joins the
customer's profile, and a forged or foreign token never resumes anyone's conversation."""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import hmac
import json
from typing import Any

import pytest
import websockets
from itsdangerous import URLSafeSerializer

from inbox import pipeline
from inbox.settings import Settings
from inbox.types import Inbound, ThreadHints
from tests.inbox.fast_db import admin_token, agent_token, database_url, sqlite_template  # noqa: F401
from tests.support.server import LiveServer

pytestmark = pytest.mark.e2e

SHOP_KEY = "shop-identity-key"


@pytest.fixture
def settings(settings: Settings) -> Settings:
    """The suite's settings, with the shop's key for signing visitors' emails."""
    return dataclasses.replace(settings, webchat_identity_secret=SHOP_KEY)


def signature(email: str, key: str = SHOP_KEY) -> str:
    """What the shop's site computes for a signed-in customer's email."""
    return hmac.new(key.encode(), email.strip().lower().encode(), hashlib.sha256).hexdigest()


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


async def identify_in_chat(server: LiveServer, agent_token: str, text: str, frame: dict[str, Any],
                           until: Any) -> tuple[dict[str, Any], dict[str, Any]]:
    """A new visitor says `text`, then sends the identify `frame`; returns their message
    frame and the first contact.updated event (seen by an agent) whose contact passes
    `until` (the message's own contact event may come first)."""
    async with websockets.connect(f"{server.ws_url}/ws/agent?token={agent_token}") as agent, \
            websockets.connect(f"{server.ws_url}/ws/chat") as visitor:
        await next_frame(agent, "hello")
        await next_frame(visitor, "welcome")
        own = await say(visitor, text, "c1")
        await visitor.send(json.dumps({"type": "identify", **frame}))
        async with asyncio.timeout(10):
            while True:
                event = await next_frame(agent, "contact.updated")
                if until(event["contact"]):
                    return own, event


def claimed(contact: dict[str, Any]) -> bool:
    return contact["claimed_email"] is not None


async def test_a_typed_email_is_a_claim_on_the_visitors_contact_not_an_identity(
    server: LiveServer, agent_token: str
) -> None:
    own, event = await identify_in_chat(
        server, agent_token, "Do you ship to Canada?",
        {"email": " Maria.Lopez@Example.COM ", "name": "Maria"}, claimed)

    contact = event["contact"]
    assert contact["name"] == "Maria"
    assert contact["claimed_email"] == "Maria.Lopez@Example.COM"
    assert [i["kind"] for i in contact["identities"]] == ["webchat"]
    detail = await server.client.get(f"/api/v1/conversations/{own['conversation_id']}",
                                     headers=server.auth(agent_token))
    assert detail.json()["contact"]["id"] == contact["id"]


async def _known_customer(server: LiveServer) -> Any:
    return await pipeline.ingest(server.rt, Inbound(
        channel="email", provider="email", provider_message_id="<known@mail.example>",
        sender="maria@example.com", sender_kind="email", text="Order 1001?", display_name="Maria Lopez",
        thread=ThreadHints(message_id="<known@mail.example>", subject="Order 1001")))


@pytest.mark.parametrize("forged", [None, "0" * 64, signature("maria@example.com", "another-key")])
async def test_anyone_typing_a_customers_email_gets_nothing_of_theirs(
    server: LiveServer, agent_token: str, forged: str | None
) -> None:
    # Without the shop's signature the address proves nothing: the visitor does not join
    # the customer's profile, so neither agents nor the FAQ bot's personal answers
    # (which read the orders of the profile's identities) take them for that customer.
    by_mail = await _known_customer(server)
    frame: dict[str, Any] = {"email": "MARIA@example.com"}
    if forged is not None:
        frame["signature"] = forged
    own, event = await identify_in_chat(server, agent_token, "Where is my order?", frame, claimed)

    assert event["contact"]["id"] != by_mail.contact_id
    assert [i["kind"] for i in event["contact"]["identities"]] == ["webchat"]
    customer = (await server.client.get(f"/api/v1/contacts/{by_mail.contact_id}",
                                        headers=server.auth(agent_token))).json()
    assert {c["id"] for c in customer["conversations"]} == {by_mail.conversation_id}
    assert own["conversation_id"] != by_mail.conversation_id
    # An agent who knows better merges them: the customer is suggested, with the reason.
    suggested = (await server.client.get(f"/api/v1/contacts/{event['contact']['id']}/duplicates",
                                         headers=server.auth(agent_token))).json()["items"]
    assert [d["contact"]["id"] for d in suggested] == [by_mail.contact_id]
    assert "not verified" in suggested[0]["reason"]


async def test_an_email_the_shop_signed_joins_that_customers_contact(
    server: LiveServer, agent_token: str
) -> None:
    by_mail = await _known_customer(server)
    own, event = await identify_in_chat(
        server, agent_token, "It's me again, on the website",
        {"email": "MARIA@example.com", "signature": signature("MARIA@example.com")},
        lambda contact: any(i["kind"] == "email" for i in contact["identities"]))

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
        await contact_event(agent, "webchat")
        own = await say(visitor, "Now my question", "c1")
    detail = (await server.client.get(f"/api/v1/conversations/{own['conversation_id']}",
                                      headers=server.auth(agent_token))).json()
    assert detail["contact"]["claimed_email"] == "early@example.com"
