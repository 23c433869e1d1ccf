"""An agent works an SMS in the browser: it arrives live through the real Twilio
webhook, the reply reaches (the local fake of) Twilio, and the delivery tick follows
Twilio's status callback, all without a reload."""

from __future__ import annotations

import asyncio
import re
from typing import Any

import httpx
import pytest

from connectors.simulate import twilio_form
from inbox.agents import create_agent
from tests.conftest import make_settings
from tests.fakes.twilio_recorder import (
    TEST_ACCOUNT_SID,
    TEST_AUTH_TOKEN,
    TwilioRecorder,
    twilio_signature,
)
from tests.support.server import free_port, live_server

pytestmark = pytest.mark.e2e
playwright_api = pytest.importorskip("playwright.async_api")
expect = playwright_api.expect


async def test_sms_in_reply_out_and_delivery_tick_without_reload(browser: Any, sqlite_url: str) -> None:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    with TwilioRecorder(account_sid=TEST_ACCOUNT_SID, auth_token=TEST_AUTH_TOKEN) as twilio:
        settings = make_settings(sqlite_url, public_url=base, twilio_account_sid=TEST_ACCOUNT_SID,
                                 twilio_auth_token=TEST_AUTH_TOKEN, twilio_api_base=twilio.base_url)
        async with live_server(settings, port=port) as srv:
            await create_agent(srv.rt, email="sam@test.example", name="Sam", role="agent",
                               password="agent-password-1")
            page = await (await browser.new_context()).new_page()
            await page.goto(f"{base}/login")
            await page.get_by_label("Email").fill("sam@test.example")
            await page.get_by_label("Password").fill("agent-password-1")
            await page.get_by_role("button", name="Log in").click()
            await expect(page.locator("#conn")).to_have_text(re.compile("live"))

            async def text_in(body: str, sid: str) -> None:
                form = twilio_form(sender="+15550106060", recipient="+15550009999", text=body,
                                   whatsapp=False, name=None, account_sid=TEST_ACCOUNT_SID)
                form["MessageSid"] = form["SmsSid"] = sid
                signature = twilio_signature(base + "/webhooks/twilio", form, TEST_AUTH_TOKEN)
                async with httpx.AsyncClient() as client:
                    resp = await client.post(base + "/webhooks/twilio", data=form,
                                             headers={"X-Twilio-Signature": signature})
                assert resp.status_code == 200

            await text_in("Hi, where is order 1001?", "SMbrowser1")
            item = page.locator("#conversations .conv", has_text="Hi, where is order 1001?")
            await expect(item).to_be_visible()  # live, no reload
            await item.click()
            await text_in("Also: can I pick it up?", "SMbrowser2")
            await expect(page.locator(".msg", has_text="Also: can I pick it up?")).to_be_visible()

            await page.get_by_label("Reply by SMS").fill("It ships today, tracking by SMS.")
            await page.keyboard.press("Control+Enter")
            [sent] = await twilio.wait_for_async(1)
            assert sent.first("Body") == "It ships today, tracking by SMS."
            assert sent.first("To") == "+15550106060" and sent.first("From") == "+15550009999"
            mine = page.locator(".msg.out", has_text="It ships today")
            await expect(mine.locator(".ticks")).to_contain_text("queued")

            message_sid = await _sid_of(srv, "It ships today, tracking by SMS.")
            assert (await twilio.status_callback_async(message_sid, "delivered")).status_code == 204
            await expect(mine.locator(".ticks")).to_contain_text("delivered")


async def _sid_of(srv: Any, text: str) -> str:
    from sqlalchemy import select

    from inbox.models import Message

    for _ in range(100):
        async with srv.rt.sessions() as session:
            result = await session.exec(select(Message).where(Message.text == text))  # type: ignore[call-overload]
            message = result.scalars().first()
        if message is not None and message.provider_message_id:
            return str(message.provider_message_id)
        await asyncio.sleep(0.05)
    raise AssertionError("the reply never got a Twilio sid")
