"""What the composer asks before sending (segments, the WhatsApp window), and the window
rule itself through the real API: free text refused with 409 + the approved templates,
templates sent as ContentSid/ContentVariables (Twilio) or template objects (Meta)."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest

from connectors.sms_segments import segment_info
from inbox.agents import create_agent
from tests.channels.conftest import TEMPLATES, ChannelEnv
from tests.fakes.graph_recorder import text_webhook

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(120)]

SHOP = "+15550001111"
TWILIO_TEMPLATE, META_TEMPLATE = TEMPLATES


async def twilio_conversation(env: ChannelEnv, sid: str, sender: str, *, whatsapp: bool = True) -> int:
    prefix = "whatsapp:" if whatsapp else ""
    response = await env.post_twilio({"MessageSid": sid, "From": prefix + sender, "To": prefix + SHOP,
                                      "Body": "Hello?", "ProfileName": "Ada"})
    assert response.status_code == 200, response.text
    message = await env.stored("whatsapp" if whatsapp else "sms", sid)
    assert message is not None
    return message.conversation_id


async def meta_conversation(env: ChannelEnv, wamid: str, wa_id: str) -> int:
    response = await env.post_meta(text_webhook("Hello?", wa_id=wa_id, message_id=wamid))
    assert response.status_code == 200, response.text
    message = await env.stored("whatsapp", wamid)
    assert message is not None
    return message.conversation_id


# ------------------------------------------------------------------------- segments

@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)  # no database involved
async def test_segments_api_answers_what_segment_info_computes(env: ChannelEnv) -> None:
    texts = ["", "Your order shipped", "a" * 160, "a" * 161, "€" * 80, "€" * 81,
             "Привет, как дела?", "ü" * 70 + "😀", "x" * 306, "x" * 307, "ç" * 70 + "ж"]
    for text in texts:
        response = await env.api("GET", "/compose/segments", params={"text": text})
        assert response.status_code == 200, response.text
        got = response.json()
        info = segment_info(text)
        wanted = {"encoding": info.encoding, "segments": info.segments, "characters": info.characters,
                  "per_segment": info.per_segment, "remaining": info.remaining}
        assert {k: got[k] for k in wanted} == wanted, text
    spot = {t: (await env.api("GET", "/compose/segments", params={"text": t})).json()
            for t in ("a" * 160, "a" * 161, "Привет")}
    assert (spot["a" * 160]["encoding"], spot["a" * 160]["segments"], spot["a" * 160]["remaining"]) == ("GSM-7", 1, 0)
    assert (spot["a" * 161]["segments"], spot["a" * 161]["per_segment"]) == (2, 153)
    assert (spot["Привет"]["encoding"], spot["Привет"]["per_segment"], spot["Привет"]["remaining"]) == ("UCS-2", 70, 64)

    assert (await env.client.get("/api/v1/compose/segments?text=hi")).status_code == 401
    _editor, token = await create_agent(env.server.rt, email="faq@channels.example", name="FAQ",
                                        role="faq_editor", password="faq-password")
    forbidden = await env.client.get("/api/v1/compose/segments?text=hi", headers=env.server.auth(token))
    assert forbidden.status_code == 403
    too_long = await env.api("GET", "/compose/segments", params={"text": "x" * 10_001})
    assert too_long.status_code == 400 and too_long.json()["error"] == "bad_input"


# --------------------------------------------------------------------------- window

async def test_window_api_follows_the_customers_last_message(env: ChannelEnv) -> None:
    sms = await twilio_conversation(env, "SMw-sms", "+15550106001", whatsapp=False)
    assert (await env.get(f"/conversations/{sms}/window"))["open"] is True

    wa = await twilio_conversation(env, "SMw-open", "+15550106002")
    state = await env.get(f"/conversations/{wa}/window")
    assert state["open"] is True and 86_000 < state["seconds_left"] <= 86_400
    assert datetime.fromisoformat(state["closes_at"]) > datetime.now(UTC)

    await env.age_conversation(wa, hours=25)
    state = await env.get(f"/conversations/{wa}/window")
    assert state["open"] is False and state["seconds_left"] == 0
    assert datetime.fromisoformat(state["closes_at"]) < datetime.now(UTC)
    assert (await env.api("GET", "/conversations/999999/window")).status_code == 404


async def test_window_api_names_the_channel_and_offers_the_templates(env: ChannelEnv) -> None:
    wa = await twilio_conversation(env, "SMw-tpl", "+15550106003")
    await env.age_conversation(wa, hours=30)
    state = await env.get(f"/conversations/{wa}/window")
    assert state["channel"] == "whatsapp" and state["open"] is False
    assert state["templates"] == list(TEMPLATES)
    meta = await meta_conversation(env, "wamid.w-tpl", "15550106007")
    state = await env.get(f"/conversations/{meta}/window")
    assert state["channel"] == "whatsapp" and state["open"] is True and state["templates"] == list(TEMPLATES)
    sms = await twilio_conversation(env, "SMw-tpl-sms", "+15550106008", whatsapp=False)
    state = await env.get(f"/conversations/{sms}/window")
    assert state["channel"] == "sms" and state["open"] is True and state["templates"] == []


def assert_window_refusal(response: Any) -> None:
    assert response.status_code == 409, response.text
    body = response.json()
    assert body["error"] == "conflict" and body["reason"] == "whatsapp_window_closed", body
    assert "24-hour window" in body["detail"] and "template" in body["detail"]
    assert body["templates"] == list(TEMPLATES), body
    assert datetime.fromisoformat(body["closes_at"]) < datetime.now(UTC)


async def test_twilio_whatsapp_outside_the_window_takes_only_a_template(env: ChannelEnv) -> None:
    cid = await twilio_conversation(env, "SMw-closed", "+15550106004")
    await env.age_conversation(cid, hours=23)
    inside = await env.reply(cid, "Still within the window")
    assert inside.status_code == 201
    await env.wait_sent(cid, inside.json()["id"])

    await env.age_conversation(cid, hours=24.5)
    before = len((await env.get(f"/conversations/{cid}"))["messages"])
    assert_window_refusal(await env.reply(cid, "Free text after a day"))
    assert len((await env.get(f"/conversations/{cid}"))["messages"]) == before, "a refusal stores nothing"

    template = {"name": TWILIO_TEMPLATE["name"], "variables": {"1": "Ada", "2": "#1001"}}
    response = await env.reply(cid, "", template=template)
    assert response.status_code == 201, response.text
    assert response.json()["meta"]["template"]["name"] == TWILIO_TEMPLATE["name"]
    await env.wait_sent(cid, response.json()["id"])
    sent = env.twilio.messages[-1]
    assert sent["ContentSid"] == [TWILIO_TEMPLATE["name"]]
    assert json.loads(sent["ContentVariables"][0]) == {"1": "Ada", "2": "#1001"}
    assert "Body" not in sent
    assert sent["To"] == ["whatsapp:+15550106004"] and sent["From"] == [f"whatsapp:{SHOP}"]
    assert [m["Body"][0] for m in env.twilio.messages if "Body" in m] == ["Still within the window"]

    # The customer answers: the window opens again for free text.
    await env.post_twilio({"MessageSid": "SMw-back", "From": "whatsapp:+15550106004",
                           "To": f"whatsapp:{SHOP}", "Body": "Thanks!"})
    assert (await env.reply(cid, "You're welcome")).status_code == 201


async def test_meta_outside_the_window_takes_only_a_template(env: ChannelEnv) -> None:
    cid = await meta_conversation(env, "wamid.w-closed", "15550106005")
    await env.age_conversation(cid, hours=48)
    assert_window_refusal(await env.reply(cid, "Free text after two days"))
    template = {"name": META_TEMPLATE["name"], "language": META_TEMPLATE["language"],
                "variables": {"1": "#1001"}}
    response = await env.reply(cid, "", template=template)
    assert response.status_code == 201, response.text
    await env.wait_sent(cid, response.json()["id"])
    [payload] = env.graph.messages
    assert payload["type"] == "template" and payload["to"] == "15550106005"
    assert payload["template"] == {
        "name": "order_update", "language": {"code": "en_US"},
        "components": [{"type": "body", "parameters": [{"type": "text", "text": "#1001"}]}]}


async def test_sms_has_no_window(env: ChannelEnv) -> None:
    cid = await twilio_conversation(env, "SMw-sms-old", "+15550106006", whatsapp=False)
    await env.age_conversation(cid, hours=24 * 30)
    assert (await env.reply(cid, "A month later")).status_code == 201
