"""The FAQ editor in a real Chromium against a real server (SQLite, FAQ responder wired).

An FAQ editor logs in, creates an entry, previews it, tries a message, and turns a group
of unanswered customer questions into an entry. Customer text is hostile on purpose: it
must show up as text, never run.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from typing import Any

import pytest

from faq.cli import import_items, read_items
from faq.demo import SHOP_FAQ
from faq.wiring import build_responders
from inbox import pipeline
from inbox.agents import create_agent
from inbox.types import Inbound
from tests.conftest import make_settings
from tests.support.server import LiveServer, live_server

playwright_api = pytest.importorskip("playwright.async_api")
expect = playwright_api.expect

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(120)]

PASSWORD = "editor-password-1"
HOSTILE = 'Is your leather vegan? <img src=x onerror="window.__xss=1">'


@pytest.fixture
async def live(sqlite_url: str) -> AsyncIterator[LiveServer]:
    async with live_server(make_settings(sqlite_url), responders=build_responders) as srv:
        await create_agent(srv.rt, email="fay@test.example", name="Fay FAQ", role="faq_editor",
                           password=PASSWORD)
        items, _problems = read_items(SHOP_FAQ)
        await import_items(srv.rt, items)
        for n, text in enumerate([HOSTILE, "is the leather vegan??"]):
            await pipeline.ingest(srv.rt, Inbound(
                channel="webchat", provider="webchat", provider_message_id=f"v_e2e{n}:1",
                sender=f"v_e2e{n}", sender_kind="webchat", text=text, recipient="webchat"))
        await srv.rt.drain()
        yield srv


async def test_faq_editor_creates_entry_tries_message_and_covers_unanswered_group(
    live: LiveServer, browser: Any
) -> None:
    errors: list[str] = []
    context = await browser.new_context(viewport={"width": 1400, "height": 900})
    page = await context.new_page()
    page.on("pageerror", lambda exc: errors.append(f"pageerror: {exc}"))
    page.on("console", lambda msg: errors.append(f"console: {msg.text}") if msg.type == "error" else None)

    await page.goto(f"{live.base_url}/login")
    await page.get_by_label("Email").fill("fay@test.example")
    await page.get_by_label("Password").fill(PASSWORD)
    await page.get_by_role("button", name="Log in").click()
    await expect(page).to_have_url(re.compile(r"/faq$"))
    await expect(page.locator("#faq-count")).to_have_text("35 entries")

    # Validation errors are shown, not swallowed.
    await page.get_by_label("Question", exact=True).fill("Do you offer student discounts?")
    await page.get_by_role("button", name="Save").click()
    await expect(page.locator("#faq-errors")).to_contain_text("answer: required")

    # Create an entry.
    await page.get_by_label("Other ways customers ask it").fill("Is there a discount for students?")
    await page.locator("#f-answer").fill("Yes: **10% off** with a student ID.")
    await page.get_by_label("Tags").fill("discounts, students")
    await page.get_by_role("button", name="Save").click()
    await expect(page.locator("#faq-status")).to_have_text("Saved.")
    await expect(page.locator("#faq-count")).to_have_text("36 entries")
    await expect(page.locator("#faq-form-title")).to_have_text("Edit entry")
    await expect(page.locator("#faq-stats")).to_contain_text("Answered 0 times")

    # Per-channel preview.
    await page.locator("#p-channel").select_option("whatsapp")
    await page.get_by_role("button", name="Preview").click()
    await expect(page.locator("#p-text")).to_have_text("Yes: *10% off* with a student ID.")

    # Search finds it.
    await page.get_by_label("Search entries").fill("student")
    await expect(page.locator("#faq-count")).to_have_text('1 entry matching "student"')
    await page.get_by_label("Search entries").fill("")
    await expect(page.locator("#faq-count")).to_have_text("36 entries")

    # Try a message: the new entry answers at once.
    await page.get_by_label("A customer message").fill("Do you offer student discounts?")
    await page.get_by_role("button", name="Try", exact=True).click()
    result = page.locator("#try-result")
    await expect(result).to_contain_text("The bot would answer.")
    await expect(result).to_contain_text("Best match: Do you offer student discounts?")
    await page.get_by_label("A customer message").fill("I was charged twice for order 10234")
    await page.get_by_role("button", name="Try", exact=True).click()
    await expect(result).to_contain_text("The bot would not answer: payment problem.")

    # The unanswered group: two customers asked about vegan leather; the hostile one is text.
    group = page.locator("#un-groups .faq-group").first
    await expect(group).to_contain_text("2×")
    await expect(group.locator(".faq-group-text")).to_have_text("is the leather vegan??")
    await group.locator("summary").click()
    await expect(group.locator(".faq-group-questions")).to_contain_text('<img src=x onerror="window.__xss=1">')
    await group.get_by_role("button", name="Create an entry from this group").click()
    await expect(page.locator("#faq-from-group")).to_contain_text("2 unanswered question(s)")
    await expect(page.get_by_label("Question", exact=True)).to_have_value("is the leather vegan??")
    await page.locator("#f-answer").fill("Our leather is real; the vegan line is marked on the product page.")
    await page.get_by_role("button", name="Save").click()
    await expect(page.locator("#faq-status")).to_have_text("Saved.")
    await expect(page.locator("#un-empty")).to_be_visible()
    await expect(page.locator("#faq-count")).to_have_text("37 entries")

    assert await page.evaluate("window.__xss") is None
    # The one failed request is the deliberate validation error (400) above.
    assert [e for e in errors if "status of 400" not in e] == []
    await context.close()
