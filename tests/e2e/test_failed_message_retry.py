"""A failed reply shows its reason and a Retry that works; a bot answer says why it was sent."""

from __future__ import annotations

import asyncio
import re
from typing import Any

import pytest

from inbox import pipeline
from inbox.agents import create_agent
from inbox.models import Message
from inbox.types import Inbound
from tests.conftest import make_settings
from tests.fakes.twilio_recorder import TEST_ACCOUNT_SID, TEST_AUTH_TOKEN, TwilioRecorder
from tests.support.server import LiveServer, live_server

pytestmark = pytest.mark.e2e
playwright_api = pytest.importorskip("playwright.async_api")
expect = playwright_api.expect


async def _status(srv: LiveServer, message_id: int, wanted: str) -> Message:
    for _ in range(200):
        async with srv.rt.sessions() as session:
            message = await session.get(Message, message_id)
        if message is not None and message.delivery_status == wanted:
            return message
        await asyncio.sleep(0.05)
    raise AssertionError(f"message {message_id} never became {wanted}")


async def _last_out(srv: LiveServer) -> Message:
    from sqlalchemy import desc, select

    async with srv.rt.sessions() as session:
        result = await session.exec(select(Message).where(Message.direction == "out")  # type: ignore[call-overload]
                                    .order_by(desc(Message.id)).limit(1))
        return result.scalars().one()  # type: ignore[no-any-return]


async def test_agent_retries_a_failed_sms_from_the_thread_and_sees_why_the_bot_answered(
    browser: Any, sqlite_url: str
) -> None:
    with TwilioRecorder(account_sid=TEST_ACCOUNT_SID, auth_token=TEST_AUTH_TOKEN) as twilio:
        settings = make_settings(sqlite_url, twilio_account_sid=TEST_ACCOUNT_SID,
                                 twilio_auth_token=TEST_AUTH_TOKEN, twilio_api_base=twilio.base_url,
                                 twilio_default_from="+15550009999")
        async with live_server(settings) as srv:
            _agent, token = await create_agent(srv.rt, email="sam@test.example", name="Sam",
                                               role="agent", password="agent-password-1")
            got = await pipeline.ingest(srv.rt, Inbound(
                channel="sms", provider="twilio", provider_message_id="SMretry1",
                sender="+15550104040", sender_kind="phone", recipient="+15550009999",
                display_name="Rita Retry", text="Is my parcel coming?"))
            await pipeline.reply(srv.rt, conversation_id=got.conversation_id, author_kind="bot",
                                 text="Parcels ship in 1 day.",
                                 meta={"faq_question": "How long does shipping take?", "confidence": 0.93})
            await _status(srv, (await _last_out(srv)).id or 0, "queued")
            # A non-retryable failure: failed at once, with Twilio's reason.
            twilio.fail_next(400, code=21211, message="Invalid 'To' Phone Number")
            resp = await srv.client.post(f"/api/v1/conversations/{got.conversation_id}/messages",
                                         json={"text": "It left today."}, headers=srv.auth(token))
            failed_id = resp.json()["id"]
            await _status(srv, failed_id, "failed")

            # Retrying something that did not fail is refused.
            ok = await srv.client.post(f"/api/v1/messages/{got.message_id}/retry", headers=srv.auth(token))
            assert ok.status_code == 409 and ok.json()["reason"] == "not_failed"

            page = await (await browser.new_context()).new_page()
            await page.goto(f"{srv.base_url}/login")
            await page.get_by_label("Email").fill("sam@test.example")
            await page.get_by_label("Password").fill("agent-password-1")
            await page.get_by_role("button", name="Log in").click()
            await page.locator("#conversations .conv", has_text="Rita Retry").first.click()
            await expect(page.locator(".msg-why")).to_have_text(
                re.compile(r"FAQ: How long does shipping take\? · confidence 93%"))
            failed = page.locator(f'[data-id="{failed_id}"] .ticks.failed')
            await expect(failed).to_contain_text("21211")
            await failed.get_by_role("button", name="Retry").click()
            await _status(srv, failed_id, "queued")
            await expect(page.locator(f'[data-id="{failed_id}"] .ticks')).to_contain_text("queued")
            bodies = [m["Body"][0] for m in twilio.messages]
            assert bodies.count("It left today.") == 1
