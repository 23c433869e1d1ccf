"""Canned responses and contact merges in a real Chromium against a real server.

An agent types "/ship" in the composer, picks the response with the keyboard and sends
it; an agent merges a suggested duplicate from the customer panel and undoes it; an
admin manages canned responses on /canned.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from typing import Any

import pytest
from sqlalchemy import select

from inbox import pipeline
from inbox.agents import create_agent
from inbox.canned import create_canned
from inbox.merge import ContactMerge
from inbox.models import Contact, Identity, Message
from inbox.types import Inbound, ThreadHints
from tests.conftest import make_settings
from tests.e2e.test_inbox_browser import Watch, conv_item, open_conv, shot_path
from tests.support.server import LiveServer, live_server

playwright_api = pytest.importorskip("playwright.async_api")
expect = playwright_api.expect

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(120)]

PASSWORD = "agent-password-1"


def chat(text: str, *, visitor: str, name: str | None = None, pid: str) -> Inbound:
    return Inbound(channel="webchat", provider="webchat", provider_message_id=pid, sender=visitor,
                   sender_kind="webchat", recipient="webchat", text=text, display_name=name)


def mail(text: str, *, sender: str, name: str, pid: str) -> Inbound:
    return Inbound(channel="email", provider="email", provider_message_id=pid, sender=sender,
                   sender_kind="email", recipient="support@shop.example", display_name=name,
                   text=text, thread=ThreadHints(message_id=pid, subject="Mug"))


@pytest.fixture
async def live(sqlite_url: str) -> AsyncIterator[LiveServer]:
    """A real server on SQLite with an agent (Ana) and an admin (Sam)."""
    async with live_server(make_settings(sqlite_url)) as srv:
        await create_agent(srv.rt, email="ana@test.example", name="Ana Agent", role="agent",
                           password=PASSWORD)
        await create_agent(srv.rt, email="sam@test.example", name="Sam Admin", role="admin",
                           password=PASSWORD)
        yield srv


async def log_in(browser: Any, live: LiveServer, watch: Watch, email: str) -> Any:
    context = await browser.new_context(viewport={"width": 1280, "height": 800})
    page = watch.attach(await context.new_page())
    await page.goto(f"{live.base_url}/login")
    await page.get_by_label("Email").fill(email)
    await page.get_by_label("Password").fill(PASSWORD)
    await page.get_by_role("button", name="Log in").click()
    return page


async def test_agent_types_slash_ship_picks_the_response_by_keyboard_and_sends_it(
    live: LiveServer, browser: Any
) -> None:
    await create_canned(live.rt, shortcut="shipping", title="Shipping times",
                        text="We ship within 2 working days.")
    await create_canned(live.rt, shortcut="shipped", title="Already shipped",
                        text="Your order is on its way.")
    await create_canned(live.rt, shortcut="refund", title="Refunds", text="Refunds take 5 days.")
    await pipeline.ingest(live.rt, chat("When do you ship?", visitor="v-ship", name="Pat Buyer",
                                        pid="v-ship:1"))
    watch = Watch()
    page = await log_in(browser, live, watch, "ana@test.example")
    await expect(page.locator("#conn")).to_have_text(re.compile("live"))
    await expect(page.get_by_role("link", name="Canned responses")).to_have_count(0)  # admins only
    await open_conv(page, "Pat Buyer")

    composer = page.get_by_label("Reply by Web chat")
    await composer.press_sequentially("Hi Pat! /ship")
    menu = page.get_by_role("listbox", name="Canned responses")
    options = menu.get_by_role("option")
    await expect(options).to_have_count(2)  # "refund" filtered out
    await expect(options.first).to_contain_text("/shipped")
    await expect(options.first).to_have_attribute("aria-selected", "true")
    await composer.press("ArrowDown")
    await expect(options.nth(1)).to_have_attribute("aria-selected", "true")
    await expect(composer).to_have_attribute("aria-activedescendant", re.compile("-1$"))
    await page.screenshot(path=str(shot_path("canned-menu.png")))
    await composer.press("Enter")
    await expect(menu).to_be_hidden()
    await expect(composer).to_have_value("Hi Pat! We ship within 2 working days.")

    # Escape closes a menu without changing the text.
    await composer.press_sequentially(" /ref")
    await expect(options).to_have_count(1)
    await composer.press("Escape")
    await expect(menu).to_be_hidden()
    await expect(composer).to_have_value("Hi Pat! We ship within 2 working days. /ref")
    await composer.press("Backspace")
    await composer.press("Backspace")
    await composer.press("Backspace")
    await composer.press("Backspace")
    await composer.press("Backspace")

    await composer.press("Control+Enter")
    await expect(page.locator(".msg.a-agent")).to_contain_text("Hi Pat! We ship within 2 working days.")
    await expect(composer).to_have_value("")
    async with live.rt.sessions() as session:
        result = await session.exec(select(Message.text).where(Message.author_kind == "agent"))  # type: ignore[call-overload]
        assert list(result.scalars().all()) == ["Hi Pat! We ship within 2 working days."]
    assert watch.dialogs == [] and watch.errors == []


async def test_agent_merges_a_suggested_duplicate_in_the_panel_and_undoes_it(
    live: LiveServer, browser: Any
) -> None:
    chat_in = await pipeline.ingest(live.rt, chat("Is my mug coming?", visitor="v-dana",
                                                  name="Dana Fox", pid="v-dana:1"))
    mail_in = await pipeline.ingest(live.rt, mail("About my mug order", sender="dana@mail.example",
                                                  name="dana fox", pid="<dana-1@mail.example>"))
    watch = Watch()
    page = await log_in(browser, live, watch, "ana@test.example")
    await expect(page.locator("#conn")).to_have_text(re.compile("live"))
    await open_conv(page, "Is my mug coming?")
    panel = page.locator("#panel")
    duplicate = panel.locator(".duplicate")
    await expect(duplicate).to_contain_text("Possible duplicate: dana fox (same name)")
    await expect(panel.locator(".identities")).not_to_contain_text("dana@mail.example")

    await duplicate.get_by_role("button", name=re.compile("^Merge")).click()
    await expect(panel.locator(".identities")).to_contain_text("dana@mail.example")
    await expect(panel.locator(".duplicate")).to_have_count(0)
    undo = panel.get_by_role("button", name="Undo merge")
    await expect(undo).to_be_visible()
    await expect(panel.locator(".others")).to_contain_text("Mug")  # the email thread moved in
    await page.screenshot(path=str(shot_path("panel-merged.png")))
    async with live.rt.sessions() as session:
        source = await session.get(Contact, mail_in.contact_id)
        assert source is not None and source.merged_into_id == chat_in.contact_id

    await undo.click()
    await expect(panel.get_by_role("button", name="Undo merge")).to_have_count(0)
    await expect(panel.locator(".identities")).not_to_contain_text("dana@mail.example")
    await expect(panel.locator(".duplicate")).to_contain_text("dana fox")
    async with live.rt.sessions() as session:
        source = await session.get(Contact, mail_in.contact_id)
        assert source is not None and source.merged_into_id is None
        owner = (await session.exec(select(Identity.contact_id).where(  # type: ignore[call-overload]
            Identity.value == "dana@mail.example"))).scalar()
        assert owner == mail_in.contact_id
        record = (await session.exec(select(ContactMerge))).scalars().one()  # type: ignore[call-overload]
        assert record.undone_at is not None and record.merged_by == "Ana Agent"
    assert watch.dialogs == [] and watch.errors == []


async def test_admin_creates_edits_and_deletes_canned_responses_on_their_page(
    live: LiveServer, browser: Any
) -> None:
    watch = Watch()
    page = await log_in(browser, live, watch, "sam@test.example")
    await page.get_by_role("link", name="Canned responses").click()
    await expect(page).to_have_url(re.compile("/canned$"))

    await page.get_by_label(re.compile("^Shortcut")).fill("two words")
    await page.get_by_role("button", name="Save").click()
    await expect(page.locator("#c-errors")).to_contain_text("shortcut")
    await expect(page.locator("#c-errors")).to_contain_text("text")

    await page.get_by_label(re.compile("^Shortcut")).fill("hours")
    await page.get_by_label(re.compile("^Title")).fill("Opening hours")
    await page.get_by_label("Text", exact=True).fill("We answer 9-17, Monday to Friday.")
    await page.get_by_role("button", name="Save").click()
    item = page.locator("#canned-items li", has_text="/hours")
    await expect(item).to_contain_text("We answer 9-17")

    await item.get_by_role("button", name="Edit /hours").click()
    await page.get_by_label("Text", exact=True).fill("We answer 8-18 now.")
    await page.get_by_role("button", name="Save").click()
    await expect(item).to_contain_text("We answer 8-18 now.")

    await item.get_by_role("button", name="Delete /hours").click()
    await item.get_by_role("button", name="Delete /hours").click()  # second click confirms
    await expect(page.locator("#canned-items li")).to_have_count(0)
    # The one console line allowed: the browser logging the refused (400) save.
    assert watch.dialogs == [] and [e for e in watch.errors if "status of 400" not in e] == []

    agent = await log_in(browser, live, Watch(), "ana@test.example")
    response = await agent.goto(f"{live.base_url}/canned")
    assert response is not None and response.status == 403
