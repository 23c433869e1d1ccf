"""The FAQ auto-answer through the real pipeline and database (SQLite and PostgreSQL).

Customers speak through `pipeline.ingest` (what every connector calls); the responder
runs after commit as it does in production and `rt.drain()` waits for it. The only
stand-in is the shop's order system (`ShopOrders`), the edge of the world.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Sequence
from itertools import count
from typing import Any

import pytest
import websockets

from faq import store
from faq.cli import import_items, read_items
from faq.demo import SHOP_FAQ
from faq.entries import validate_entry
from faq.service import service_for
from faq.store import FaqEntry
from faq.wiring import build_responders
from inbox import pipeline
from inbox import store as inbox_store
from inbox.models import Conversation, Message, OutboxRow
from inbox.runtime import Runtime
from inbox.settings import Settings
from inbox.types import FLAG_AUTO_REPLY, FLAG_OPT_OUT, Inbound, ThreadHints
from tests.conftest import make_settings
from tests.support.server import live_server
from web.app import build_runtime

_ids = count(1)

TRACKING_TEMPLATE = ("Your order **#{{ order.number }}** is {{ order.status }}. "
                     "Track it here: {{ order.tracking_url }}")
TRACKING_FALLBACK = "You can see the status of every order under Account > Orders."


class ShopOrders:
    """The shop's order system: orders by customer email, newest first."""

    name = "test-shop"

    def __init__(self, orders: dict[str, list[dict[str, Any]]]) -> None:
        self.orders = orders
        self.asked: list[tuple[list[str], list[str]]] = []

    async def orders_for(self, *, emails: Sequence[str], phones: Sequence[str]) -> list[dict[str, Any]]:
        self.asked.append((list(emails), list(phones)))
        return [o for e in emails for o in self.orders.get(e, [])]


async def _seed_shop_faq(rt: Runtime) -> None:
    items, problems = read_items(SHOP_FAQ)
    assert problems == []
    _created, _updated, bad = await import_items(rt, items)
    assert bad == []
    async with rt.sessions() as session:
        tracking = await store.entry_by_external_id(session, external_id="order-tracking")
    assert tracking is not None
    await service_for(rt).update(rt, tracking.id or 0, validate_entry(
        {"answer": TRACKING_TEMPLATE, "answer_fallback": TRACKING_FALLBACK}, partial=True))


def faq_settings(database_url: str, **extra: str) -> Settings:
    # Twilio configured (never called: no dispatcher here) so SMS replies may be queued.
    return make_settings(database_url, twilio_account_sid="ACtest", twilio_auth_token="secret",
                         twilio_api_base="http://127.0.0.1:9", extra=dict(extra))


@pytest.fixture
async def frt(database_url: str) -> AsyncIterator[Runtime]:
    """A runtime with the FAQ responder wired and the shop FAQ loaded."""
    runtime = await build_runtime(faq_settings(database_url), migrate_db=False,
                                  responders=build_responders)
    try:
        await _seed_shop_faq(runtime)
        yield runtime
    finally:
        await runtime.drain()
        await runtime.close()


async def say(rt: Runtime, text: str, *, channel: str = "webchat", sender: str = "v_alice",
              flags: frozenset[str] = frozenset(), subject: str | None = None) -> int:
    """A customer message through the real ingest; waits for the responders."""
    kinds = {"webchat": "webchat", "sms": "phone", "whatsapp": "phone", "email": "email"}
    providers = {"webchat": "webchat", "sms": "twilio", "whatsapp": "twilio", "email": "email"}
    n = next(_ids)
    inbound = Inbound(
        channel=channel, provider=providers[channel], provider_message_id=f"msg-{n}",
        sender=sender, sender_kind=kinds[channel], text=text, flags=flags,
        recipient="support@shop.example" if channel == "email" else
        ("webchat" if channel == "webchat" else "+15550009999"),
        thread=ThreadHints(message_id=f"<m{n}@mail.example>", subject=subject or "Question")
        if channel == "email" else ThreadHints(),
    )
    result = await pipeline.ingest(rt, inbound)
    await rt.drain()
    return result.conversation_id


async def thread(rt: Runtime, conversation_id: int) -> list[Message]:
    async with rt.sessions() as session:
        return await inbox_store.list_messages(session, conversation_id=conversation_id)


async def conversation(rt: Runtime, conversation_id: int) -> Conversation:
    async with rt.sessions() as session:
        conv = await session.get(Conversation, conversation_id)
    assert conv is not None
    return conv


async def entry(rt: Runtime, external_id: str) -> FaqEntry:
    async with rt.sessions() as session:
        found = await store.entry_by_external_id(session, external_id=external_id)
    assert found is not None
    return found


async def unanswered(rt: Runtime) -> list[tuple[str, str]]:
    async with rt.sessions() as session:
        rows = await store.open_unanswered(session)
    return [(r.text, r.reason) for r in reversed(rows)]


def bot_answers(messages: list[Message]) -> list[Message]:
    return [m for m in messages if m.author_kind == "bot" and "faq_entry_id" in m.meta]


async def test_confident_question_is_answered_with_faq_meta_and_queued_in_outbox(frt: Runtime) -> None:
    cid = await say(frt, "How long does shipping take?")
    messages = await thread(frt, cid)
    (answer,) = bot_answers(messages)
    shipping = await entry(frt, "shipping-time")
    assert answer.text == shipping.answer
    assert answer.meta["faq_entry_id"] == shipping.id
    assert answer.meta["faq_question"] == "How long does shipping take?"
    assert answer.meta["confidence"] >= service_for(frt).policy.threshold
    async with frt.sessions() as session:
        assert await inbox_store.outbox_for_message(session, message_id=answer.id or 0) is not None
    conv = await conversation(frt, cid)
    assert conv.handled_by == "bot" and conv.bot_answers == 1
    shipping = await entry(frt, "shipping-time")
    assert shipping.auto_answers == 1 and shipping.last_used_at is not None
    assert await unanswered(frt) == []


async def test_bot_stays_silent_after_an_agent_replied_until_resolved(frt: Runtime) -> None:
    from inbox.agents import create_agent

    agent, _token = await create_agent(frt, email="sam@shop.example", name="Sam", role="agent")
    cid = await say(frt, "Hello, I have a question about my parcel")
    await pipeline.reply(frt, conversation_id=cid, text="Hi, Sam here.", agent_id=agent.id)
    await frt.drain()
    await say(frt, "How long does shipping take?")
    assert bot_answers(await thread(frt, cid)) == []

    await pipeline.set_status(frt, conversation_id=cid, status="resolved")
    await frt.drain()
    assert await say(frt, "How long does shipping take?") == cid
    assert len(bot_answers(await thread(frt, cid))) == 1


async def test_bot_stays_silent_after_take_over(frt: Runtime) -> None:
    from inbox.agents import create_agent

    agent, _token = await create_agent(frt, email="sam@shop.example", name="Sam", role="agent")
    cid = await say(frt, "hi")
    await pipeline.take_over(frt, conversation_id=cid, agent_id=agent.id or 0)
    await frt.drain()
    await say(frt, "How long does shipping take?")
    assert bot_answers(await thread(frt, cid)) == []
    assert await unanswered(frt) == []


async def test_request_for_a_human_hands_over_at_once_with_an_acknowledgement(frt: Runtime) -> None:
    cid = await say(frt, "I want to talk to a human")
    messages = await thread(frt, cid)
    conv = await conversation(frt, cid)
    assert conv.handled_by == "human"
    note = [m for m in messages if m.private]
    assert note and "asked for a person" in note[-1].text
    (ack,) = [m for m in messages if m.meta.get("faq_handover") == "wants_human"]
    assert not ack.private and "person" in ack.text
    assert await unanswered(frt) == [("I want to talk to a human", "wants_human")]

    kid = await say(frt, "상담원이랑 얘기하고 싶어요", sender="v_korean")
    (ack_ko,) = [m for m in await thread(frt, kid) if m.meta.get("faq_handover")]
    assert "상담원" in ack_ko.text


async def test_auto_reply_is_never_answered(frt: Runtime) -> None:
    cid = await say(frt, "How long does shipping take?", channel="email",
                    sender="ooo@customer.example", flags=frozenset({FLAG_AUTO_REPLY}),
                    subject="Out of office: How long does shipping take?")
    messages = await thread(frt, cid)
    assert [m.author_kind for m in messages] == ["customer"]
    assert (await conversation(frt, cid)).handled_by == "bot"
    assert await unanswered(frt) == []


async def test_opt_out_keyword_is_not_answered(frt: Runtime) -> None:
    cid = await say(frt, "STOP", channel="sms", sender="+15550102030",
                    flags=frozenset({FLAG_OPT_OUT}))
    assert [m.author_kind for m in await thread(frt, cid)] == ["customer"]


async def test_needs_human_message_is_handed_over_and_recorded(frt: Runtime) -> None:
    cid = await say(frt, "I was charged twice for order 10234")
    messages = await thread(frt, cid)
    assert bot_answers(messages) == []
    assert (await conversation(frt, cid)).handled_by == "human"
    assert any(m.private and "payment problem" in m.text for m in messages)
    assert await unanswered(frt) == [("I was charged twice for order 10234", "payment_problem")]


async def test_question_without_confident_match_goes_to_humans_and_is_recorded(frt: Runtime) -> None:
    cid = await say(frt, "Is the CEO a fan of jazz music?")
    assert bot_answers(await thread(frt, cid)) == []
    assert (await conversation(frt, cid)).handled_by == "human"
    assert await unanswered(frt) == [("Is the CEO a fan of jazz music?", "not_confident")]


async def test_small_talk_gets_no_answer_and_no_hand_over(frt: Runtime) -> None:
    cid = await say(frt, "hi there!")
    assert [m.author_kind for m in await thread(frt, cid)] == ["customer"]
    assert (await conversation(frt, cid)).handled_by == "bot"
    assert await unanswered(frt) == []


async def test_personal_answer_uses_the_customers_latest_order(frt: Runtime) -> None:
    shop = ShopOrders({"ana@customer.example": [
        {"number": "10234", "status": "shipped", "tracking_url": "https://track.example/10234"},
        {"number": "10001", "status": "delivered", "tracking_url": "https://track.example/10001"},
    ]})
    frt.order_sources.append(shop)
    cid = await say(frt, "How can I track my order?", channel="email", sender="Ana@Customer.example")
    (answer,) = bot_answers(await thread(frt, cid))
    assert answer.text == ("Your order #10234 is shipped. Track it here: "
                           "https://track.example/10234")
    assert answer.html is not None and "<strong>#10234</strong>" in answer.html
    assert shop.asked == [(["ana@customer.example"], [])]

    # Someone the shop does not know gets the plain fallback.
    other = await say(frt, "How can I track my order?", channel="email", sender="bo@customer.example")
    (plain,) = bot_answers(await thread(frt, other))
    assert plain.text == TRACKING_FALLBACK


async def test_personal_answer_without_order_or_fallback_hands_over(frt: Runtime) -> None:
    tracking = await entry(frt, "order-tracking")
    await service_for(frt).update(frt, tracking.id or 0, {"answer_fallback": None})
    cid = await say(frt, "How can I track my order?")
    assert bot_answers(await thread(frt, cid)) == []
    assert (await conversation(frt, cid)).handled_by == "human"
    assert await unanswered(frt) == [("How can I track my order?", "needs_order")]


async def test_answers_are_rendered_for_the_channel(frt: Runtime) -> None:
    svc = service_for(frt)
    await svc.create(frt, validate_entry({
        "question": "Do you offer student discounts?",
        "answer": "Yes: **10% off** with a _student ID_. See [our terms](https://shop.example/students).",
    }))
    sms = await say(frt, "Do you offer student discounts?", channel="sms", sender="+15550102030")
    wa = await say(frt, "Do you offer student discounts?", channel="whatsapp", sender="+15550102031")
    mail = await say(frt, "Do you offer student discounts?", channel="email", sender="cy@customer.example")
    (s,) = bot_answers(await thread(frt, sms))
    (w,) = bot_answers(await thread(frt, wa))
    (e,) = bot_answers(await thread(frt, mail))
    assert s.text == "Yes: 10% off with a student ID. See our terms (https://shop.example/students)."
    assert s.html is None
    assert w.text == "Yes: *10% off* with a _student ID_. See our terms (https://shop.example/students)."
    assert e.text == s.text
    assert e.html == ('<p>Yes: <strong>10% off</strong> with a <em>student ID</em>. See '
                      '<a href="https://shop.example/students">our terms</a>.</p>')


async def test_entry_limited_to_other_channels_is_not_used(frt: Runtime) -> None:
    shipping = await entry(frt, "shipping-time")
    await service_for(frt).update(frt, shipping.id or 0, {"channels": ["email"]})
    cid = await say(frt, "How long does shipping take?")
    assert bot_answers(await thread(frt, cid)) == []
    assert await unanswered(frt) == [("How long does shipping take?", "entry_not_for_channel")]


async def test_disabled_entry_is_not_used(frt: Runtime) -> None:
    shipping = await entry(frt, "shipping-time")
    await service_for(frt).update(frt, shipping.id or 0, {"enabled": False})
    cid = await say(frt, "How long does shipping take?")
    assert all(m.meta.get("faq_entry_id") != shipping.id for m in await thread(frt, cid))


async def test_negative_feedback_hands_over_and_counts_against_the_entry(frt: Runtime) -> None:
    cid = await say(frt, "How long does shipping take?")
    assert len(bot_answers(await thread(frt, cid))) == 1
    await say(frt, "no, that didn't help")
    conv = await conversation(frt, cid)
    assert conv.handled_by == "human"
    shipping = await entry(frt, "shipping-time")
    assert shipping.auto_answers == 1 and shipping.handovers_after_answer == 1
    # The question the rejected answer was for is what editors see.
    assert await unanswered(frt) == [("How long does shipping take?", "negative_feedback")]


async def test_bot_answer_limit_then_hand_over(database_url: str) -> None:
    rt = await build_runtime(faq_settings(database_url, INBOX_FAQ_MAX_BOT_ANSWERS="2"),
                             migrate_db=False, responders=build_responders)
    try:
        await _seed_shop_faq(rt)
        cid = await say(rt, "How long does shipping take?")
        await say(rt, "What payment methods do you accept?")
        await say(rt, "What is your return policy?")
        messages = await thread(rt, cid)
        assert len(bot_answers(messages)) == 2
        conv = await conversation(rt, cid)
        assert conv.handled_by == "human" and conv.bot_answers == 2
        assert await unanswered(rt) == [("What is your return policy?", "bot_answer_limit")]
    finally:
        await rt.drain()
        await rt.close()


async def test_webchat_visitor_receives_the_bot_answer_through_the_outbox(database_url: str) -> None:
    async with live_server(faq_settings(database_url), responders=build_responders) as server:
        await _seed_shop_faq(server.rt)
        async with websockets.connect(f"{server.ws_url}/ws/chat") as visitor:
            welcome = json.loads(await visitor.recv())
            assert welcome["type"] == "welcome"
            await visitor.send(json.dumps({"type": "message", "text": "How long does shipping take?",
                                           "client_id": "q1"}))
            seen: list[dict[str, Any]] = []
            while not any(m["author"] == "bot" for m in seen):
                frame = json.loads(await asyncio.wait_for(visitor.recv(), 5))
                if frame.get("type") == "message":
                    seen.append(frame["message"])
        bot = next(m for m in seen if m["author"] == "bot")
        shipping = await entry(server.rt, "shipping-time")
        assert bot["text"] == shipping.answer
        for _ in range(100):  # the dispatcher marks the outbox row done once "sent"
            async with server.rt.sessions() as session:
                row = await session.get(OutboxRow, (await inbox_store.outbox_for_message(
                    session, message_id=bot["id"])).id)  # type: ignore[union-attr]
            if row is not None and row.state == "done":
                break
            await asyncio.sleep(0.05)
        assert row is not None and row.state == "done"


# The pure parts the responder relies on: no database needed.


def test_answer_templates_run_in_the_sandbox() -> None:
    from faq.render import personalise, template_problem

    assert template_problem("{{ order.__class__.__mro__ }}") is not None
    assert personalise("{{ order.__class__ }}", order={"number": "1"}) is None
    assert personalise("#{{ order.number }}", order={"number": "10234"}) == "#10234"
    assert personalise("{{ order.missing_field }}", order={"number": "1"}) is None


def test_policy_hands_over_when_the_runner_up_is_too_close() -> None:
    from faq.matcher import Candidate, MatchResult
    from faq.policy import EntryFacts, Policy, Situation, decide

    policy = Policy(threshold=0.8, min_margin=0.25)
    s = Situation(text="How long does shipping take?", channel="webchat")
    clear = MatchResult("1", 0.95, (Candidate("1", 0.95), Candidate("2", 0.05)))
    close = MatchResult("1", 0.95, (Candidate("1", 0.95), Candidate("2", 0.80)))
    assert decide(s, clear, EntryFacts(1), policy).action == "answer"
    assert decide(s, close, EntryFacts(1), policy).reason == "not_confident"
    low = MatchResult("1", 0.7, (Candidate("1", 0.7),))
    assert decide(s, low, EntryFacts(1), policy).reason == "not_confident"
    on_email_only = EntryFacts(1, channels=("email",))
    assert decide(s, clear, on_email_only, policy).reason == "entry_not_for_channel"
    human = Situation(text=s.text, channel="webchat", handled_by="human")
    assert decide(human, clear, EntryFacts(1), policy).action == "ignore"
