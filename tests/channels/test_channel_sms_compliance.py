"""SMS compliance through the real webhook and API: opt-out keywords, opting back in,
and HELP answered with the configured help text through Twilio."""

from __future__ import annotations

import asyncio

import pytest

from tests.channels.conftest import HELP_TEXT, ChannelEnv

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(120)]

SHOP = "+15550001111"
# Each keyword as customers really type it (case and surrounding spaces vary).
OPT_OUT = ["STOP", "stopall", " Unsubscribe ", "cancel", "End", "QUIT\n"]
OPT_IN = ["START", "unstop"]


async def customer_says(env: ChannelEnv, sid: str, sender: str, text: str, *, whatsapp: bool = False) -> int:
    prefix = "whatsapp:" if whatsapp else ""
    response = await env.post_twilio({"MessageSid": sid, "From": prefix + sender, "To": prefix + SHOP,
                                      "Body": text})
    assert response.status_code == 200, response.text
    message = await env.stored("whatsapp" if whatsapp else "sms", sid)
    assert message is not None and message.text == text
    return message.conversation_id


async def opted_out(env: ChannelEnv, conversation_id: int) -> bool:
    conversation = await env.get(f"/conversations/{conversation_id}")
    contact = await env.get(f"/contacts/{conversation['contact']['id']}")
    [identity] = contact["identities"]
    return bool(identity["opted_out"])


async def test_opt_out_keywords_block_replies_until_the_customer_opts_back_in(env: ChannelEnv) -> None:
    conversations: list[tuple[int, str]] = []
    for index, keyword in enumerate(OPT_OUT):
        number = f"+1555010500{index}"
        cid = await customer_says(env, f"SMc-hi-{index}", number, "Hi, question about my order")
        assert not await opted_out(env, cid)
        assert await customer_says(env, f"SMc-stop-{index}", number, keyword) == cid
        assert await opted_out(env, cid), keyword
        refused = await env.reply(cid, "Sorry to see you go!")
        assert refused.status_code == 422, (keyword, refused.text)
        body = refused.json()
        assert body["error"] == "refused" and body["reason"] == "opted_out", body
        assert "opted out" in body["detail"] and "START" in body["detail"]
        # A private note is still allowed (it never leaves the inbox).
        note = await env.api("POST", f"/conversations/{cid}/notes", json={"text": "opted out"})
        assert note.status_code == 201
        conversations.append((cid, number))
    await asyncio.sleep(0.2)
    assert env.twilio.message_requests == [], "nothing may go to an opted-out number"

    for index, (cid, number) in enumerate(conversations[: len(OPT_IN)]):
        keyword = OPT_IN[index]
        await customer_says(env, f"SMc-start-{index}", number, keyword)
        assert not await opted_out(env, cid), keyword
        response = await env.reply(cid, "Welcome back!")
        assert response.status_code == 201, response.text
        await env.wait_sent(cid, response.json()["id"])
    sent = [(m["To"][0], m["Body"][0]) for m in env.twilio.messages]
    assert sorted(sent) == sorted((number, "Welcome back!") for _, number in conversations[:2])
    # The others stay opted out.
    for cid, _number in conversations[2:]:
        assert await opted_out(env, cid)


async def test_stop_inside_a_sentence_is_an_ordinary_message(env: ChannelEnv) -> None:
    cid = await customer_says(env, "SMc-sentence", "+15550105100", "please stop the second parcel")
    assert not await opted_out(env, cid)
    assert (await env.reply(cid, "Done, stopped it")).status_code == 201


async def test_help_is_answered_with_the_configured_help_text_through_twilio(env: ChannelEnv) -> None:
    cid = await customer_says(env, "SMc-help", "+15550105200", "help")
    await env.twilio.wait_for_async(1)
    [sent] = env.twilio.messages
    assert sent["Body"] == [HELP_TEXT] and env.settings.help_text == HELP_TEXT
    assert sent["To"] == ["+15550105200"] and sent["From"] == [SHOP]
    data = await env.get(f"/conversations/{cid}")
    [answer] = [m for m in data["messages"] if m["direction"] == "out"]
    assert answer["author"] == "system" and answer["text"] == HELP_TEXT
    assert not await opted_out(env, cid)


async def test_keywords_on_whatsapp_are_ordinary_messages(env: ChannelEnv) -> None:
    """The SMS keywords are carrier rules; on WhatsApp "STOP" is text for an agent."""
    cid = await customer_says(env, "SMc-wa-stop", "+15550105300", "STOP", whatsapp=True)
    assert not await opted_out(env, cid)
    await customer_says(env, "SMc-wa-help", "+15550105300", "HELP", whatsapp=True)
    await asyncio.sleep(0.2)
    assert env.twilio.message_requests == []


async def test_sms_stop_does_not_silence_the_same_number_on_whatsapp(env: ChannelEnv) -> None:
    wa = await customer_says(env, "SMc-both-wa", "+15550105400", "Hi on WhatsApp", whatsapp=True)
    sms = await customer_says(env, "SMc-both-sms", "+15550105400", "STOP")
    assert (await env.reply(sms, "bye")).status_code == 422
    response = await env.reply(wa, "Still here on WhatsApp")
    assert response.status_code == 201, response.text
