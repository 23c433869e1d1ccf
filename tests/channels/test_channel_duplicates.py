"""Providers retry webhooks: the same delivery twice, or twice at once, is one message
and one `message.created` event."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest

from tests.channels.conftest import META_APP_SECRET, ChannelEnv
from tests.fakes.graph_recorder import meta_signature, text_webhook
from tests.fakes.twilio_recorder import TEST_AUTH_TOKEN, twilio_signature

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(120)]


async def created_events(env: ChannelEnv, conversation_id: int) -> list[dict[str, Any]]:
    events = (await env.get("/events?since=0&limit=200"))["items"]
    return [e for e in events if e["type"] == "message.created" and e["conversation_id"] == conversation_id]


async def assert_stored_once(env: ChannelEnv, channel: str, provider_id: str) -> None:
    message = await env.stored(channel, provider_id)
    assert message is not None
    data = await env.get(f"/conversations/{message.conversation_id}")
    assert [m["id"] for m in data["messages"]] == [message.id]
    assert [e["message"]["id"] for e in await created_events(env, message.conversation_id)] == [message.id]
    assert data["conversation"]["unread_count"] == 1


def twilio_request(env: ChannelEnv, sid: str, sender: str) -> tuple[dict[str, str], dict[str, str]]:
    form = {"MessageSid": sid, "SmsSid": sid, "From": sender, "To": "+15550001111",
            "Body": "Did my payment go through?", "NumMedia": "0"}
    return form, {"X-Twilio-Signature": twilio_signature(env.twilio_url(), form, TEST_AUTH_TOKEN),
                  "I-Twilio-Idempotency-Token": f"idem-{sid}"}


def meta_request(wamid: str, wa_id: str) -> tuple[bytes, dict[str, str]]:
    raw = json.dumps(text_webhook("Did my payment go through?", wa_id=wa_id, message_id=wamid)).encode()
    return raw, {"Content-Type": "application/json",
                 "X-Hub-Signature-256": meta_signature(raw, META_APP_SECRET)}


async def test_twilio_webhook_delivered_twice_is_stored_once(env: ChannelEnv) -> None:
    form, headers = twilio_request(env, "SMdup-seq", "+15550107001")
    for _ in range(2):
        response = await env.client.post("/webhooks/twilio", data=form, headers=headers)
        assert response.status_code == 200, response.text
    await assert_stored_once(env, "sms", "SMdup-seq")


async def test_twilio_webhook_delivered_concurrently_is_stored_once(env: ChannelEnv) -> None:
    form, headers = twilio_request(env, "SMdup-par", "+15550107002")
    responses = await asyncio.gather(*[env.client.post("/webhooks/twilio", data=form, headers=headers)
                                       for _ in range(2)])
    assert [r.status_code for r in responses] == [200, 200], [r.text for r in responses]
    await assert_stored_once(env, "sms", "SMdup-par")


async def test_meta_webhook_delivered_twice_and_concurrently_is_stored_once(env: ChannelEnv) -> None:
    raw, headers = meta_request("wamid.dup-seq", "15550107003")
    for _ in range(2):
        response = await env.client.post("/webhooks/whatsapp", content=raw, headers=headers)
        assert response.status_code == 200, response.text
    await assert_stored_once(env, "whatsapp", "wamid.dup-seq")

    raw, headers = meta_request("wamid.dup-par", "15550107004")
    responses = await asyncio.gather(*[env.client.post("/webhooks/whatsapp", content=raw, headers=headers)
                                       for _ in range(3)])
    assert [r.status_code for r in responses] == [200, 200, 200], [r.text for r in responses]
    await assert_stored_once(env, "whatsapp", "wamid.dup-par")


async def test_concurrent_first_messages_from_one_new_customer_make_one_contact(env: ChannelEnv) -> None:
    """Two different messages racing from a number never seen: one contact, one conversation."""
    forms = [twilio_request(env, f"SMrace-{i}", "+15550107005") for i in range(2)]
    responses = await asyncio.gather(*[env.client.post("/webhooks/twilio", data=f, headers=h)
                                       for f, h in forms])
    assert [r.status_code for r in responses] == [200, 200], [r.text for r in responses]
    first, second = [await env.stored("sms", f"SMrace-{i}") for i in range(2)]
    assert first is not None and second is not None
    assert first.conversation_id == second.conversation_id
    contacts = (await env.get("/contacts?q=15550107005"))["items"]
    assert len(contacts) == 1
