"""An email's original HTML: shown in a sandboxed frame, remote images only on request."""

from __future__ import annotations

import re
from typing import Any

import pytest

from inbox import pipeline
from inbox.agents import create_agent
from inbox.types import Inbound, ThreadHints
from tests.conftest import make_settings
from tests.support.server import live_server

pytestmark = pytest.mark.e2e
playwright_api = pytest.importorskip("playwright.async_api")
expect = playwright_api.expect

TRACKER = "https://tracker.example/open.png"


async def test_remote_images_in_email_html_load_only_after_the_agent_asks(
    browser: Any, sqlite_url: str
) -> None:
    async with live_server(make_settings(sqlite_url)) as srv:
        await create_agent(srv.rt, email="sam@test.example", name="Sam", role="agent",
                           password="agent-password-1")
        await pipeline.ingest(srv.rt, Inbound(
            channel="email", provider="email", provider_message_id="<html-1@example.com>",
            sender="newsletter@example.com", sender_kind="email", display_name="Lena Web",
            text="See the picture", thread=ThreadHints(subject="Picture"),
            html=f'<p>See the picture</p><img data-remote-src="{TRACKER}" alt="photo">'))
        page = await (await browser.new_context()).new_page()
        await page.goto(f"{srv.base_url}/login")
        await page.get_by_label("Email").fill("sam@test.example")
        await page.get_by_label("Password").fill("agent-password-1")
        await page.get_by_role("button", name="Log in").click()
        await page.locator("#conversations .conv", has_text="Lena Web").first.click()
        await page.get_by_role("button", name="Show original formatting").click()
        frame = page.locator("iframe.html-frame")
        await expect(frame).to_have_attribute("sandbox", "")
        srcdoc = await frame.get_attribute("srcdoc") or ""
        armed = re.compile(r'\ssrc="' + re.escape(TRACKER))  # not data-remote-src
        assert "See the picture" in srcdoc and not armed.search(srcdoc)
        await page.get_by_role("button", name="Load remote images").click()
        await expect(frame).to_have_attribute("srcdoc", armed)
