"""Agent replies through the real API, the real dispatcher and the real `twilio` client
against the fake Twilio API (and through httpx against the fake Graph API); delivery
reports back through the signed status webhooks, out to an agent's websocket."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import pytest
import websockets

from tests.channels.conftest import ChannelEnv
from tests.fakes.graph_recorder import text_webhook

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(120)]

SHOP_US = "+15550001111"
SHOP_UK = "+15550002222"


async def sms_in(env: ChannelEnv, sid: str, sender: str, to: str, text: str, *,
                 whatsapp: bool = False) -> int:
    """A customer's message through POST /webhooks/twilio; returns its conversation id."""
    prefix = "whatsapp:" if whatsapp else ""
    response = await env.post_twilio({"MessageSid": sid, "From": prefix + sender, "To": prefix + to,
                                      "Body": text, "NumMedia": "0"})
    assert response.status_code == 200, response.text
    message = await env.stored("whatsapp" if whatsapp else "sms", sid)
    assert message is not None
    return message.conversation_id


async def reply(env: ChannelEnv, conversation_id: int, text: str) -> int:
    response = await env.reply(conversation_id, text)
    assert response.status_code == 201, response.text
    body = response.json()
    assert body["delivery_status"] == "pending" and body["author"] == "agent"
    return int(body["id"])


def first(form: dict[str, list[str]], key: str) -> str | None:
    values = form.get(key)
    return values[0] if values else None


class AgentTap:
    """An agent's /ws/agent socket, read in the background: message.updated by message id."""

    def __init__(self, ws: Any) -> None:
        self.ws = ws
        self.updates: dict[int, list[dict[str, Any]]] = {}
        self.taken: dict[int, int] = {}
        self.task = asyncio.create_task(self._read())

    async def _read(self) -> None:
        async for raw in self.ws:
            frame = json.loads(raw)
            if frame.get("type") == "message.updated":
                self.updates.setdefault(frame["message"]["id"], []).append(frame["message"])

    async def next(self, message_id: int, count: int = 1, timeout: float = 10.0) -> list[dict[str, Any]]:
        """The next `count` message.updated events about `message_id` (not seen before)."""
        deadline = asyncio.get_running_loop().time() + timeout
        start = self.taken.get(message_id, 0)
        while len(self.updates.get(message_id, [])) < start + count:
            if asyncio.get_running_loop().time() > deadline:
                raise AssertionError(f"message {message_id}: only {self.updates.get(message_id)}")
            await asyncio.sleep(0.02)
        self.taken[message_id] = start + count
        return self.updates[message_id][start:start + count]


@asynccontextmanager
async def agent_socket(env: ChannelEnv) -> AsyncIterator[AgentTap]:
    async with websockets.connect(f"{env.server.ws_url}/ws/agent?token={env.token}") as ws:
        while json.loads(await asyncio.wait_for(ws.recv(), 10)).get("type") != "hello":
            pass
        tap = AgentTap(ws)
        try:
            yield tap
        finally:
            tap.task.cancel()


# ---------------------------------------------------------------------------- Twilio

async def test_each_reply_leaves_from_the_business_number_the_customer_wrote_to(env: ChannelEnv) -> None:
    us = await sms_in(env, "SMo-us", "+15550103001", SHOP_US, "Hi from the US shop")
    uk = await sms_in(env, "SMo-uk", "+15550103002", SHOP_UK, "Hi from the other shop")
    wa = await sms_in(env, "SMo-wa", "+15550103003", SHOP_UK, "Hi on WhatsApp", whatsapp=True)
    assert len({us, uk, wa}) == 3
    sent_ids = [await reply(env, us, "Answer US"), await reply(env, uk, "Answer UK"),
                await reply(env, wa, "Answer WhatsApp")]
    sids = [str((await env.wait_sent(cid, mid))["provider_message_id"])
            for cid, mid in zip((us, uk, wa), sent_ids, strict=True)]

    by_body = {first(m, "Body"): m for m in env.twilio.messages}
    callback = env.settings.public_url + "/webhooks/twilio/status"
    expected = {
        "Answer US": ("+15550103001", SHOP_US),
        "Answer UK": ("+15550103002", SHOP_UK),
        "Answer WhatsApp": ("whatsapp:+15550103003", f"whatsapp:{SHOP_UK}"),
    }
    assert set(by_body) == set(expected)
    for body, (to, sender) in expected.items():
        form = by_body[body]
        assert first(form, "To") == to and first(form, "From") == sender, form
        assert first(form, "StatusCallback") == callback, form
        assert "MediaUrl" not in form

    # A WhatsApp status callback (To: whatsapp:+...) finds the WhatsApp message.
    assert (await env.twilio.status_callback_async(sids[2], "read")).status_code == 204
    assert (await env.message(wa, sent_ids[2]))["delivery_status"] == "read"

    # Media go as MediaUrl (one per attachment), from the agent's API reply.
    media = [{"content_type": "image/jpeg", "url": "https://cdn.shop.example/receipt.jpg"},
             {"content_type": "application/pdf", "url": "https://cdn.shop.example/invoice.pdf"}]
    resp = await env.reply(us, "Your receipt", attachments=media)
    assert resp.status_code == 201, resp.text
    await env.wait_sent(us, resp.json()["id"])
    bad = await env.reply(us, "x", attachments=[{"url": "file:///etc/passwd"}])
    assert bad.status_code == 400 and "attachment 0" in bad.json()["detail"]
    [form] = [m for m in env.twilio.messages if first(m, "Body") == "Your receipt"]
    assert form["MediaUrl"] == [a["url"] for a in media]
    assert first(form, "From") == SHOP_US and first(form, "To") == "+15550103001"


async def test_a_429_then_201_sends_exactly_once(env: ChannelEnv) -> None:
    cid = await sms_in(env, "SMo-429", "+15550103004", SHOP_US, "Anyone there?")
    env.twilio.fail_next(429, headers={"Retry-After": "0"})
    mid = await reply(env, cid, "Yes, we are")
    sent = await env.wait_sent(cid, mid)
    assert len(env.twilio.message_requests) == 2, "one refused attempt, one accepted"
    [accepted] = env.twilio.messages
    assert first(accepted, "Body") == "Yes, we are"
    assert sent["delivery_status"] == "queued" and str(sent["provider_message_id"]).startswith("SM")
    await asyncio.sleep(0.3)  # nothing else goes out later
    assert len(env.twilio.message_requests) == 2 and len(env.twilio.messages) == 1


async def test_twilio_21610_marks_the_identity_opted_out(env: ChannelEnv) -> None:
    cid = await sms_in(env, "SMo-21610", "+15550103005", SHOP_US, "hello")
    env.twilio.fail_next(400, code=21610, message="Attempt to send to unsubscribed recipient")
    mid = await reply(env, cid, "Hello!")
    failed = await env.wait_message(cid, mid, lambda m: m["delivery_status"] == "failed")
    assert failed["error_code"] == "21610"
    assert "unsubscribed" in (failed["error_text"] or "")
    conversation = await env.get(f"/conversations/{cid}")
    contact = await env.get(f"/contacts/{conversation['contact']['id']}")
    [identity] = contact["identities"]
    assert identity["value"] == "+15550103005" and identity["opted_out"] is True
    refused = await env.reply(cid, "Are you still there?")
    assert refused.status_code == 422 and refused.json()["reason"] == "opted_out"
    assert env.twilio.messages == []


async def test_status_callbacks_move_the_message_and_reach_the_agent_socket(env: ChannelEnv) -> None:
    cid = await sms_in(env, "SMo-status", "+15550103006", SHOP_US, "Track my parcel")
    async with agent_socket(env) as ws:
        mid = await reply(env, cid, "It is on its way")
        sid = str((await env.wait_sent(cid, mid))["provider_message_id"])
        assert [m["delivery_status"] for m in await ws.next(mid, 1)] == ["queued"]
        for status in ("sent", "delivered", "read"):
            response = await env.twilio.status_callback_async(sid, status)
            assert response.status_code == 204, response.text
            [update] = await ws.next(mid, 1)
            assert update["delivery_status"] == status
            assert (await env.message(cid, mid))["delivery_status"] == status
        # Late or repeated reports never move it back.
        for status in ("delivered", "sent", "queued"):
            assert (await env.twilio.status_callback_async(sid, status)).status_code == 204
        assert (await env.message(cid, mid))["delivery_status"] == "read"

        failing = await reply(env, cid, "One more thing")
        failing_sid = str((await env.wait_sent(cid, failing))["provider_message_id"])
        await ws.next(failing, 1)  # queued
        response = await env.twilio.status_callback_async(
            failing_sid, "failed", error_code="30007", error_message="Message filtered by the carrier")
        assert response.status_code == 204
        [update] = await ws.next(failing, 1)
        assert update["delivery_status"] == "failed" and update["error_code"] == "30007"
        assert update["error_text"] == "Message filtered by the carrier"
        stored = await env.message(cid, failing)
        assert (stored["delivery_status"], stored["error_code"], stored["error_text"]) == \
            ("failed", "30007", "Message filtered by the carrier")

        # Without ErrorMessage the code's known reason is kept.
        third = await reply(env, cid, "And another")
        third_sid = str((await env.wait_sent(cid, third))["provider_message_id"])
        await env.twilio.status_callback_async(third_sid, "undelivered", error_code="30003")
        got = await env.wait_message(cid, third, lambda m: m["delivery_status"] == "undelivered")
        assert got["error_code"] == "30003" and "Unreachable" in (got["error_text"] or "")

    # A forged callback (signed with another token) changes nothing.
    url, params, _ = env.twilio.signed_status_callback(sid, "failed", error_code="30008")
    forged = await env.client.post(url.removeprefix(env.settings.public_url), data=params,
                                   headers={"X-Twilio-Signature": "Zm9yZ2Vk"})
    assert forged.status_code == 403
    assert (await env.message(cid, mid))["delivery_status"] == "read"


# ---------------------------------------------------------------------------- Meta

async def meta_in(env: ChannelEnv, wamid: str, wa_id: str, phone_number_id: str, display: str,
                  text: str) -> int:
    body = text_webhook(text, wa_id=wa_id, message_id=wamid, phone_number_id=phone_number_id,
                        display_phone_number=display)
    response = await env.post_meta(body)
    assert response.status_code == 200 and response.json()["stored"] == 1, response.text
    message = await env.stored("whatsapp", wamid)
    assert message is not None
    return message.conversation_id


def meta_status(wamid: str, status: str, recipient: str, **extra: Any) -> dict[str, Any]:
    return {"object": "whatsapp_business_account", "entry": [{"id": "WABA", "changes": [{
        "field": "messages", "value": {
            "messaging_product": "whatsapp",
            "metadata": {"display_phone_number": "15550001111", "phone_number_id": "111111111111111"},
            "statuses": [{"id": wamid, "status": status, "timestamp": "1700000000",
                          "recipient_id": recipient, **extra}]}}]}]}


async def test_meta_replies_leave_from_the_phone_number_id_the_customer_wrote_to(env: ChannelEnv) -> None:
    first_cid = await meta_in(env, "wamid.m-1", "15550104001", "111111111111111", "15550001111", "Hola")
    second_cid = await meta_in(env, "wamid.m-2", "15550104002", "222222222222222", "15550002222", "Hello")
    for cid, pnid in ((first_cid, "111111111111111"), (second_cid, "222222222222222")):
        assert (await env.get(f"/conversations/{cid}"))["conversation"]["our_address"] == pnid

    async with agent_socket(env) as ws:
        one = await reply(env, first_cid, "¡Hola! ¿En qué te ayudo?")
        two = await reply(env, second_cid, "Hi! How can we help?")
        wamids = {}
        for cid, mid in ((first_cid, one), (second_cid, two)):
            wamids[mid] = str((await env.wait_sent(cid, mid))["provider_message_id"])
            assert wamids[mid].startswith("wamid.")
        calls = {r.path: r.json for r in env.graph.requests if r.path.endswith("/messages")}
        assert calls["/v21.0/111111111111111/messages"]["to"] == "15550104001"
        assert calls["/v21.0/111111111111111/messages"]["text"]["body"] == "¡Hola! ¿En qué te ayudo?"
        assert calls["/v21.0/222222222222222/messages"]["to"] == "15550104002"
        assert calls["/v21.0/222222222222222/messages"]["text"]["body"] == "Hi! How can we help?"

        await ws.next(one, 1)  # queued by the dispatcher
        for status in ("sent", "delivered", "read"):
            response = await env.post_meta(meta_status(wamids[one], status, "15550104001"))
            assert response.status_code == 200 and response.json()["statuses"] == 1
            [update] = await ws.next(one, 1)
            assert update["delivery_status"] == status

        await ws.next(two, 1)
        error = {"code": 131026, "title": "Message undeliverable",
                 "message": "Message undeliverable", "error_data": {"details": "Receiver is incapable"}}
        response = await env.post_meta(meta_status(wamids[two], "failed", "15550104002", errors=[error]))
        assert response.status_code == 200
        [update] = await ws.next(two, 1)
        assert (update["delivery_status"], update["error_code"], update["error_text"]) == \
            ("failed", "131026", "Message undeliverable")


async def test_concurrent_status_callbacks_never_move_a_message_backwards(env: ChannelEnv) -> None:
    """Twilio sends sent/delivered/read within milliseconds; they may arrive at once."""
    cid = await sms_in(env, "SMo-race", "+15550103007", SHOP_US, "hi")
    regressed = []
    for attempt in range(8):
        mid = await reply(env, cid, f"reply {attempt}")
        sid = str((await env.wait_sent(cid, mid))["provider_message_id"])
        responses = await asyncio.gather(*[env.twilio.status_callback_async(sid, status)
                                           for status in ("read", "delivered", "sent")])
        assert [r.status_code for r in responses] == [204, 204, 204]
        final = (await env.message(cid, mid))["delivery_status"]
        if final != "read":
            regressed.append(final)
    assert regressed == [], f"{len(regressed)} of 8 messages ended behind 'read': {regressed}"


async def test_a_restarted_server_still_replies_from_the_conversations_phone_number_id(
    env: ChannelEnv,
) -> None:
    """The phone_number_id is stored on the conversation, not only learned in memory."""
    from tests.support.server import live_server

    cid = await meta_in(env, "wamid.m-restart", "15550104003", "333333333333333", "15550003333", "Hi")
    async with live_server(env.settings, dispatch=False) as fresh:  # a new process's connectors
        response = await fresh.client.post(f"/api/v1/conversations/{cid}/messages",
                                           json={"text": "Answer after a restart"},
                                           headers=fresh.auth(env.token))
        assert response.status_code == 201, response.text
        mid = response.json()["id"]
        assert fresh.rt.dispatcher is not None
        await fresh.rt.dispatcher.run_once()
    sent = await env.wait_sent(cid, mid)
    [call] = [r for r in env.graph.requests if r.path.endswith("/messages")]
    assert call.path == "/v21.0/333333333333333/messages" and call.json["to"] == "15550104003"
    assert str(sent["provider_message_id"]).startswith("wamid.")
