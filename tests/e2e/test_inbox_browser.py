"""The agent inbox and the web-chat widget in a real Chromium against a real server.

One agent logs in; customers arrive through the widget on /demo and through the
pipeline (as a webhook would deliver them). Screenshots of the inbox, the widget and
the customer panel go to test-artifacts/screenshots/ (the path is printed).
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from inbox import pipeline
from inbox.agents import create_agent
from inbox.types import Attachment, Inbound, ThreadHints
from tests.conftest import make_settings
from tests.support.server import LiveServer, live_server

playwright_api = pytest.importorskip("playwright.async_api")
expect = playwright_api.expect

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(120)]

SHOTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "screenshots"
PASSWORD = "agent-password-1"
XSS_FLAG = "window.__xss"

_counter = 0


def sms(text: str, *, sender: str = "+15550102030", name: str | None = None,
        attachments: list[Attachment] | None = None) -> Inbound:
    global _counter
    _counter += 1
    return Inbound(channel="sms", provider="twilio", provider_message_id=f"SMbrowser{_counter}",
                   sender=sender, sender_kind="phone", recipient="+15550009999", text=text,
                   display_name=name, attachments=attachments or [])


def email(text: str, *, sender: str, name: str, subject: str, html: str | None = None,
          quoted: str | None = None) -> Inbound:
    global _counter
    _counter += 1
    mid = f"<browser-{_counter}@mail.example>"
    meta: dict[str, Any] = {"subject": subject}
    if quoted:
        meta["quoted_text"] = quoted
    return Inbound(channel="email", provider="email", provider_message_id=mid, sender=sender,
                   sender_kind="email", recipient="support@shop.example", display_name=name,
                   text=text, html=html, thread=ThreadHints(message_id=mid, subject=subject),
                   meta=meta)


def shot_path(name: str) -> Path:
    SHOTS.mkdir(parents=True, exist_ok=True)
    path = SHOTS / name
    print(f"screenshot: {path}")
    return path


@pytest.fixture
async def live(sqlite_url: str) -> AsyncIterator[LiveServer]:
    """A real server on SQLite only (browser tests run once), with one agent."""
    async with live_server(make_settings(sqlite_url)) as srv:
        await create_agent(srv.rt, email="sam@test.example", name="Sam Support", role="admin",
                           password=PASSWORD)
        yield srv


class Watch:
    """Collects what must never happen on a page: dialogs, page errors, CSP violations."""

    def __init__(self) -> None:
        self.dialogs: list[str] = []
        self.errors: list[str] = []

    def attach(self, page: Any) -> Any:
        async def on_dialog(dialog: Any) -> None:
            self.dialogs.append(dialog.message)
            await dialog.dismiss()

        page.on("dialog", on_dialog)
        page.on("pageerror", lambda exc: self.errors.append(f"pageerror: {exc}"))
        page.on("console", lambda msg: self.errors.append(f"console: {msg.text}")
                if msg.type == "error" else None)
        return page


async def agent_page(browser: Any, live: LiveServer, watch: Watch, *,
                     width: int = 1280, height: int = 800) -> Any:
    context = await browser.new_context(viewport={"width": width, "height": height})
    page = watch.attach(await context.new_page())
    await page.goto(f"{live.base_url}/login")
    await page.get_by_label("Email").fill("sam@test.example")
    await page.get_by_label("Password").fill(PASSWORD)
    await page.get_by_role("button", name="Log in").click()
    await expect(page.locator("#conn")).to_have_text(re.compile("live"))
    return page


def conv_item(page: Any, text: str) -> Any:
    return page.locator("#conversations .conv", has_text=text)


async def open_conv(page: Any, text: str) -> None:
    await conv_item(page, text).first.click()
    await expect(page.locator("#thread-title")).to_be_visible()


# ------------------------------------------------------------------------------ web chat


async def test_webchat_customer_and_agent_talk_both_ways_and_history_survives_reload(
    live: LiveServer, browser: Any
) -> None:
    watch = Watch()
    agent = await agent_page(browser, live, watch)

    shop_ctx = await browser.new_context(viewport={"width": 1280, "height": 800})
    shop = watch.attach(await shop_ctx.new_page())
    await shop.goto(f"{live.base_url}/demo?email_after=2")
    launcher = shop.locator(".oi-launcher")
    await expect(launcher).to_have_text(re.compile("Chat with us"))
    await launcher.click()
    await shop.get_by_label("Your message").fill("Hi, is the blue mug in stock?")
    await shop.get_by_label("Your message").press("Enter")
    await expect(shop.locator(".oi-msg.oi-me")).to_have_text(re.compile("blue mug in stock"))

    # Nobody answered within the (shortened) wait: the widget asks for an email.
    email_box = shop.get_by_label(re.compile("Leave your email"))
    await expect(email_box).to_be_visible(timeout=8000)
    await email_box.fill("mug.fan@mail.example")
    await shop.get_by_role("button", name="Save").click()
    await expect(shop.locator(".oi-thanks")).to_contain_text("mug.fan@mail.example")

    # The agent sees it live, opens it, and the panel knows the email now.
    await expect(conv_item(agent, "blue mug in stock")).to_be_visible()
    await open_conv(agent, "blue mug in stock")
    await expect(agent.locator(".msg.a-customer")).to_contain_text("blue mug in stock")
    await expect(agent.locator("#panel .identities")).to_contain_text("mug.fan@mail.example")

    # Agent typing shows in the widget; Ctrl+Enter sends; the reply arrives live.
    composer = agent.get_by_label("Reply by Web chat")
    await composer.fill("Yes, we have 12 in stock")
    await expect(shop.locator(".oi-typing")).to_contain_text("typing")
    await composer.press("Control+Enter")
    await expect(shop.locator(".oi-msg.oi-a-agent")).to_contain_text("12 in stock")
    await expect(composer).to_have_value("")
    await expect(agent.locator(".msg.a-agent")).to_contain_text("12 in stock")
    await expect(agent.locator(".msg.a-agent .ticks")).to_contain_text("sent")  # live message.updated

    # The customer answers back; the agent sees it without reloading.
    await shop.get_by_label("Your message").fill("Great, thanks!")
    await shop.get_by_label("Your message").press("Enter")
    await expect(agent.locator(".msg.a-customer", has_text="Great, thanks!")).to_have_count(1)
    await shop.screenshot(path=str(shot_path("widget.png")))

    # A reload keeps the conversation (token in localStorage).
    await shop.reload()
    await shop.locator(".oi-launcher").click()
    texts = shop.locator(".oi-msg .oi-text")
    await expect(texts).to_have_text(["Hi, is the blue mug in stock?", "Yes, we have 12 in stock",
                                      "Great, thanks!"])
    await shop.set_viewport_size({"width": 390, "height": 844})
    await shop.screenshot(path=str(shot_path("widget-390.png")))

    # A private note never reaches the customer.
    await agent.get_by_label("Private note").check()
    await agent.get_by_label(re.compile("Private note \\(never sent")).fill("VIP, give 10% off")
    await agent.get_by_role("button", name="Add note").click()
    await expect(agent.locator(".msg.private", has_text="VIP")).to_have_count(1)
    await shop.wait_for_timeout(500)
    await expect(shop.locator(".oi-msg", has_text="VIP")).to_have_count(0)

    await agent.screenshot(path=str(shot_path("inbox-webchat.png")))
    assert watch.dialogs == [] and watch.errors == []


# ------------------------------------------------------------------------------ live + reconnect


async def test_ingested_messages_appear_live_and_once_after_a_socket_drop(
    live: LiveServer, browser: Any
) -> None:
    watch = Watch()
    agent = await agent_page(browser, live, watch)
    await expect(agent.locator("#list-empty")).to_be_visible()

    await pipeline.ingest(live.rt, sms("Where is my parcel?", name="Maria Lopez"))
    item = conv_item(agent, "Maria Lopez")
    await expect(item).to_be_visible()
    await expect(item.locator(".unread")).to_have_text("1 unread")
    await expect(item.locator(".conv-time")).to_contain_text("waiting")
    await expect(agent).to_have_title(re.compile(r"^\(1\) Inbox"))
    # Keyboard only: the conversation is a button; Enter opens it and focuses the composer.
    await item.focus()
    await agent.keyboard.press("Enter")
    await expect(agent.get_by_label("Reply by SMS")).to_be_focused()
    await expect(item.locator(".unread")).to_have_count(0)
    await expect(agent).to_have_title(re.compile(r"^Inbox"))

    await pipeline.ingest(live.rt, sms("It was due yesterday."))
    await expect(agent.locator(".msg.a-customer", has_text="due yesterday")).to_have_count(1)
    await expect(item.locator(".conv-preview")).to_have_text("It was due yesterday.")

    # The socket drops and stays away; messages arrive meanwhile.
    await agent.evaluate("window.inboxDebug.dropSocket(1500)")
    await expect(agent.locator("#conn")).to_contain_text("offline")
    await pipeline.ingest(live.rt, sms("Hello? Anyone there?"))
    await pipeline.ingest(live.rt, sms("Order 1001 by the way", sender="+15550107777", name="Lee Park"))
    await expect(agent.locator("#banner")).to_have_text("Reconnected, caught up.", timeout=10000)
    await expect(agent.locator(".msg.a-customer", has_text="Anyone there?")).to_have_count(1)
    await expect(conv_item(agent, "Lee Park")).to_have_count(1)

    # ...and only once, even after a second drop with nothing missed.
    await agent.evaluate("window.inboxDebug.dropSocket(0)")
    await expect(agent.locator("#banner")).to_have_text("Reconnected, caught up.")
    await agent.wait_for_timeout(300)
    await expect(agent.locator(".msg.a-customer")).to_have_count(3)
    await expect(conv_item(agent, "Lee Park")).to_have_count(1)

    # The server closes every agent socket (a resync, as after an overflow); the page
    # resumes from its last seq and nothing sent meanwhile is lost.
    before = await agent.evaluate("window.inboxDebug.socket.connects")
    live.rt.hub.resync_all()
    await pipeline.ingest(live.rt, sms("Still waiting..."))
    for _ in range(100):  # (wait_for_function would need eval, which our CSP forbids)
        if await agent.evaluate("window.inboxDebug.socket.connects") > before:
            break
        await agent.wait_for_timeout(100)
    else:
        raise AssertionError("the inbox did not reconnect after the server closed its socket")
    await expect(agent.locator(".msg.a-customer", has_text="Still waiting...")).to_have_count(1)
    await expect(agent.locator(".msg.a-customer")).to_have_count(4)

    # Actions round-trip through the API and come back as events.
    await agent.get_by_role("button", name="Take over from bot").click()
    await expect(agent.locator(".thread-meta")).to_contain_text("assigned to Sam Support")
    await agent.get_by_role("button", name="Resolve").click()
    await expect(agent.locator(".thread-meta .status")).to_have_text("resolved")
    await agent.get_by_role("button", name="Reopen").click()
    await expect(agent.locator(".thread-meta .status")).to_have_text("open")
    await agent.get_by_label("Snooze until").fill("2030-01-02T09:30")
    await agent.get_by_role("button", name="Snooze").click()
    await expect(agent.locator(".thread-meta .status")).to_have_text("snoozed")
    await expect(agent.locator(".thread-meta")).to_contain_text("until")
    await agent.get_by_role("button", name="Reopen").click()
    await expect(agent.locator(".thread-meta .status")).to_have_text("open")
    await agent.get_by_label("Assign to agent").select_option(label="Unassigned")
    await agent.get_by_role("button", name="Assign", exact=True).click()
    await expect(agent.locator(".thread-meta")).to_contain_text("unassigned")
    await agent.get_by_role("button", name="Assign to me").click()
    await expect(agent.locator(".thread-meta")).to_contain_text("assigned to Sam Support")
    await expect(agent.locator(".msg.a-system", has_text="unassigned this")).to_have_count(1)
    await expect(agent.locator(".msg.a-system", has_text="assigned this to Sam Support")).to_have_count(1)

    # SMS segment counter and a refusal shown with the server's detail.
    composer = agent.get_by_label("Reply by SMS")
    await composer.fill("x" * 170)
    await expect(agent.locator(".segments")).to_contain_text("2 SMS segments")
    await composer.press("Control+Enter")
    await expect(agent.locator(".compose-error")).to_contain_text("not configured")

    # Views: Mine has it now (taken over), Unassigned has only the other one.
    await agent.get_by_role("button", name="Unassigned").click()
    await expect(conv_item(agent, "Lee Park")).to_have_count(1)
    await expect(conv_item(agent, "Maria Lopez")).to_have_count(0)
    await agent.get_by_role("button", name="Mine").click()
    await expect(conv_item(agent, "Maria Lopez")).to_have_count(1)
    await expect(conv_item(agent, "Maria Lopez").locator(".assignee")).to_have_text("→ you")
    await expect(conv_item(agent, "Lee Park")).to_have_count(0)
    await agent.get_by_role("button", name="All").click()
    await agent.get_by_label("Search conversations").fill("order 1001")
    await expect(conv_item(agent, "Lee Park")).to_have_count(1)
    await expect(conv_item(agent, "Maria Lopez")).to_have_count(0)
    await agent.get_by_label("Search conversations").fill("")
    await agent.get_by_label("Channel").select_option("sms")
    await agent.get_by_label("Status").select_option("resolved")
    await expect(agent.locator("#list-empty")).to_be_visible()
    assert watch.dialogs == []
    # The browser logs the refused reply's 409; nothing else may fail.
    assert [e for e in watch.errors if "status of 409" not in e] == []


async def test_another_agent_viewing_and_typing_is_shown(live: LiveServer, browser: Any) -> None:
    await create_agent(live.rt, email="ada@test.example", name="Ada Admin", role="agent",
                       password=PASSWORD)
    await pipeline.ingest(live.rt, sms("Can I change my address?", name="Maria Lopez"))
    watch = Watch()
    sam = await agent_page(browser, live, watch)
    ctx = await browser.new_context()
    ada = watch.attach(await ctx.new_page())
    await ada.goto(f"{live.base_url}/login")
    await ada.get_by_label("Email").fill("ada@test.example")
    await ada.get_by_label("Password").fill(PASSWORD)
    await ada.get_by_role("button", name="Log in").click()
    await open_conv(sam, "Maria Lopez")
    await open_conv(ada, "Maria Lopez")
    await expect(sam.locator(".presence")).to_contain_text("Ada Admin is viewing")
    await ada.get_by_label("Reply by SMS").fill("Sure, ")
    await expect(sam.locator(".presence")).to_contain_text("Ada Admin is typing")
    assert watch.dialogs == [] and watch.errors == []


TEMPLATES = ({"name": "order_update", "language": "en", "label": "Order update",
              "variables": ["order_number"]},)


@pytest.fixture
async def live_with_templates(sqlite_url: str) -> AsyncIterator[LiveServer]:
    """Like `live`, with approved WhatsApp templates configured."""
    async with live_server(make_settings(sqlite_url, whatsapp_templates=TEMPLATES)) as srv:
        await create_agent(srv.rt, email="sam@test.example", name="Sam Support", role="admin",
                           password=PASSWORD)
        yield srv


async def test_whatsapp_window_and_opt_out_are_shown_before_and_when_sending(
    live_with_templates: LiveServer, browser: Any
) -> None:
    from datetime import timedelta

    live = live_with_templates

    from inbox.models import Conversation
    from inbox.types import FLAG_OPT_OUT, utcnow

    wa = await pipeline.ingest(live.rt, Inbound(
        channel="whatsapp", provider="twilio", provider_message_id="WAbrowser1", sender="+15550104040",
        sender_kind="phone", recipient="+15550009999", text="Hola", display_name="Old Chat"))
    async with live.rt.sessions() as session, session.begin():
        conv = await session.get(Conversation, wa.conversation_id)
        assert conv is not None
        conv.last_customer_at = utcnow() - timedelta(hours=30)
    stop = sms("STOP", sender="+15550105050", name="Quiet Person")
    await pipeline.ingest(live.rt, dataclasses.replace(stop, flags=frozenset({FLAG_OPT_OUT})))

    watch = Watch()
    agent = await agent_page(browser, live, watch)
    await open_conv(agent, "Old Chat")
    await expect(agent.locator(".channel-info")).to_contain_text("window is closed")
    await expect(agent.get_by_label("Approved template")).to_be_visible()
    await expect(agent.get_by_label("Approved template")).to_have_value("order_update")
    await expect(agent.get_by_label("order_number")).to_be_visible()

    await open_conv(agent, "Quiet Person")
    await expect(agent.locator("#panel .identities")).to_contain_text("opted out")
    await expect(agent.locator(".channel-info")).to_contain_text("opted out")
    await agent.get_by_label("Reply by SMS").fill("Are you there?")
    await agent.get_by_role("button", name="Send").click()
    await expect(agent.locator(".compose-error")).to_contain_text("Refused:")
    await expect(agent.locator(".compose-error")).to_contain_text("opted out")
    assert watch.dialogs == []
    assert [e for e in watch.errors if "status of 422" not in e] == []


# ------------------------------------------------------------------------------ orders


async def test_customer_panel_shows_orders_matched_by_phone_and_by_email(
    live: LiveServer, browser: Any
) -> None:
    _agent, token = await create_agent(live.rt, email="shop@test.example", name="Shop",
                                       role="admin")
    # An order that arrives before its customer ever wrote (phone, another format)...
    resp = await live.client.put("/api/v1/orders/ord-1001", headers=live.auth(token), json={
        "number": "#1001", "placed_at": "2026-11-19T10:00:00Z", "status": "open",
        "financial_status": "paid", "fulfillment_status": "shipped", "currency": "USD",
        "total": "64.80", "customer_phone": "(555) 010-2030",
        "tracking_number": "1Z999", "tracking_url": "https://tracking.example/1Z999",
        "items": [{"name": "Ceramic mug, blue", "quantity": 2, "price": "14.90"}]})
    assert resp.status_code == 201, resp.text
    await pipeline.ingest(live.rt, sms("Where is order 1001?", name="Maria Lopez"))
    # ...and one for a customer who wrote first (email, other case).
    await pipeline.ingest(live.rt, email("The jacket is too small.", sender="jonas.becker@mail.example",
                                         name="Jonas Becker", subject="Exchange for order 1002",
                                         quoted="> On Monday you wrote:\n> Your order shipped"))
    resp = await live.client.put("/api/v1/orders/ord-1002", headers=live.auth(token), json={
        "number": "#1002", "placed_at": "2026-11-17T10:00:00Z", "fulfillment_status": "delivered",
        "currency": "EUR", "total": "129", "customer_email": "Jonas.Becker@MAIL.example",
        "items": [{"name": "Rain jacket, size M", "quantity": 1, "price": "129.00"}]})
    assert resp.status_code == 201, resp.text

    watch = Watch()
    agent = await agent_page(browser, live, watch)
    await open_conv(agent, "Maria Lopez")
    order = agent.locator("#panel .order", has_text="#1001")
    await expect(order).to_contain_text("shipped")
    await expect(order).to_contain_text("2 × Ceramic mug, blue")
    await expect(order).to_contain_text("$64.80")
    await expect(order).to_contain_text("matched by phone: +15550102030")
    await expect(order.get_by_role("link", name="1Z999")).to_have_attribute(
        "href", "https://tracking.example/1Z999")
    await order.get_by_role("button", name=re.compile("Insert status of order")).click()
    await expect(agent.get_by_label("Reply by SMS")).to_have_value(
        re.compile(r"^Order #1001, placed .*: open, fulfilment shipped\. Tracking: 1Z999 https://tracking\.example/1Z999\.$"))
    await agent.locator("#panel").screenshot(path=str(shot_path("customer-panel.png")))

    # An order arriving while the panel is open shows up without a reload.
    resp = await live.client.put("/api/v1/orders/ord-1005", headers=live.auth(token), json={
        "number": "#1005", "placed_at": "2026-11-21T10:00:00Z", "customer_phone": "+15550102030",
        "items": [{"name": "Linen tote bag", "quantity": 1}]})
    assert resp.status_code == 201, resp.text
    await expect(agent.locator("#panel .order", has_text="#1005")).to_contain_text("Linen tote bag")

    await open_conv(agent, "Jonas Becker")
    await expect(agent.locator("#panel .order", has_text="#1002")).to_contain_text("Rain jacket")
    await expect(agent.locator("#panel .order", has_text="#1001")).to_have_count(0)
    await expect(agent.locator(".thread-subject")).to_contain_text("Exchange for order 1002")
    quoted = agent.locator(".msg details.quoted")
    await expect(quoted.locator("pre")).not_to_be_visible()
    await quoted.locator("summary").click()
    await expect(quoted.locator("pre")).to_contain_text("On Monday you wrote")
    await agent.screenshot(path=str(shot_path("inbox.png")))

    # The same inbox at phone width: the list, then the thread and panel.
    await agent.set_viewport_size({"width": 390, "height": 844})
    await agent.get_by_role("button", name="← Conversations").click()
    await expect(conv_item(agent, "Maria Lopez")).to_be_visible()
    await open_conv(agent, "Maria Lopez")
    await expect(agent.get_by_label("Reply by SMS")).to_be_visible()
    await agent.screenshot(path=str(shot_path("inbox-390.png")), full_page=True)
    assert watch.dialogs == [] and watch.errors == []


# ------------------------------------------------------------------------------ hostile input

PAYLOADS = [
    f'<img src=x onerror="{XSS_FLAG}=1;alert(1)">',
    f"<script>{XSS_FLAG}=2;alert(2)</script>",
    "javascript:alert(3)",
]


async def test_hostile_names_texts_and_order_items_render_as_text_and_never_run(
    live: LiveServer, browser: Any
) -> None:
    _agent, token = await create_agent(live.rt, email="shop@test.example", name="Shop",
                                       role="admin")
    evil = " ".join(PAYLOADS)
    await pipeline.ingest(live.rt, sms(evil, name=PAYLOADS[0], attachments=[
        Attachment(content_type="image/png", filename=PAYLOADS[1], url="javascript:alert(4)")]))
    await pipeline.ingest(live.rt, email(
        "See the formatted version", sender="eve@mail.example", name=PAYLOADS[1],
        subject=PAYLOADS[0], html=f"<p>hi</p><script>parent.{XSS_FLAG}=5;alert(5)</script>"
                                  f"<img src=x onerror=\"parent.{XSS_FLAG}=6\">"))
    resp = await live.client.put("/api/v1/orders/evil-1", headers=live.auth(token), json={
        "number": PAYLOADS[1], "customer_phone": "+15550102030", "status": "<b onclick=x>open</b>",
        "items": [{"name": PAYLOADS[0], "quantity": 1}, {"name": PAYLOADS[2], "quantity": 1}]})
    assert resp.status_code == 201, resp.text
    refused = await live.client.put("/api/v1/orders/evil-2", headers=live.auth(token), json={
        "number": "2", "tracking_url": "javascript:alert(7)"})
    assert refused.status_code == 400 and "http(s)" in refused.json()["detail"]

    watch = Watch()
    agent = await agent_page(browser, live, watch)
    item = conv_item(agent, "SMS")  # the email's subject carries a payload too
    await expect(item).to_have_count(1)
    await expect(item.locator(".conv-name")).to_have_text(PAYLOADS[0])
    await item.click()
    await expect(agent.locator("#thread-title")).to_have_text(PAYLOADS[0])
    await expect(agent.locator(".msg-text").first).to_have_text(evil)
    attachment = agent.locator(".attachments li")
    await expect(attachment).to_contain_text("(unavailable)")
    await expect(attachment.locator("a")).to_have_count(0)
    order = agent.locator("#panel .order").first
    await expect(order).to_contain_text(PAYLOADS[2])
    await expect(order.locator(".order-items")).to_contain_text(PAYLOADS[0])

    await open_conv(agent, "See the formatted")
    await expect(agent.locator("#thread-title")).to_have_text(PAYLOADS[1])
    await agent.get_by_role("button", name="Show original formatting").click()
    frame = agent.locator("iframe.html-frame")
    await expect(frame).to_have_attribute("sandbox", "")
    await agent.wait_for_timeout(500)

    # The widget shows an agent's hostile reply as text too.
    shop_ctx = await browser.new_context()
    shop = watch.attach(await shop_ctx.new_page())
    await shop.goto(f"{live.base_url}/demo")
    await shop.locator(".oi-launcher").click()
    await shop.get_by_label("Your message").fill(PAYLOADS[1])
    await shop.get_by_label("Your message").press("Enter")
    await expect(conv_item(agent, "Web visitor")).to_have_count(1)
    await open_conv(agent, "Web visitor")
    await agent.get_by_label("Reply by Web chat").fill(PAYLOADS[0])
    await agent.get_by_label("Reply by Web chat").press("Control+Enter")
    await expect(shop.locator(".oi-msg.oi-a-agent .oi-text")).to_have_text(PAYLOADS[0])
    await expect(shop.locator(".oi-msg.oi-me .oi-text")).to_have_text(PAYLOADS[1])
    await shop.wait_for_timeout(300)

    for page in (agent, shop):
        assert await page.evaluate(f"typeof {XSS_FLAG}") == "undefined"
        assert await page.locator(".msg img, .oi-msg img, #panel img, .conv img").count() == 0
    assert watch.dialogs == []
    # Blocked inline scripts may log a CSP report; nothing else may fail.
    assert [e for e in watch.errors if "Content Security Policy" not in e and "sandboxed" not in e] == []
