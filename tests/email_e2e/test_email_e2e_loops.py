"""Two robots never loop: the FAQ bot answers a customer's question once (marked
Auto-Submitted), the customer's auto-responder answers that, and we answer nothing more.
Machine mail never reopens a resolved conversation either."""

from __future__ import annotations

import asyncio

import pytest

from faq.demo import seed
from faq.wiring import build_responders
from inbox import pipeline
from inbox.models import Conversation, Message, OutboxRow
from tests.email_e2e.helpers import (
    OURS,
    SmtpSink,
    by_thread_id,
    eml,
    eventually,
    mail,
    mail_settings,
    messages,
    post_mail,
    rows,
)
from tests.support.server import LiveServer, live_server

pytestmark = pytest.mark.e2e


async def _settle(srv: LiveServer) -> None:
    """Responders done and every outbox row settled."""
    await srv.rt.drain()

    async def idle() -> bool:
        return all(r.state in ("done", "failed") for r in await rows(srv.rt, OutboxRow))

    await eventually(idle, what="the outbox to settle")
    await asyncio.sleep(0.3)  # and nothing new comes of it
    await srv.rt.drain()


async def test_a_bot_answer_and_an_auto_responder_do_not_loop(database_url: str, relay: SmtpSink) -> None:
    settings = mail_settings(database_url, smtp_host="127.0.0.1", smtp_port=relay.port,
                             smtp_starttls=False)
    async with live_server(settings, responders=build_responders) as srv:
        await seed(srv.rt)
        question = mail(sender="Kim <kim@example.com>", subject="Shipping",
                        text="How long does shipping take?", message_id="<q1@example.com>")
        assert (await post_mail(srv, question)).status_code == 200
        cid = (await by_thread_id(srv.rt, "<q1@example.com>")).conversation_id
        await eventually(lambda: _received(relay, 1), what="the bot's answer")
        await _settle(srv)
        [answer] = relay.mails()
        assert str(answer["Auto-Submitted"]) == "auto-replied"
        assert str(answer["In-Reply-To"]) == "<q1@example.com>"
        bot_id = str(answer["Message-ID"])

        # Kim's mailbox answers our answer automatically (RFC 3834 headers) ...
        away = mail(sender="Kim <kim@example.com>", subject="Automatic reply: Re: Shipping",
                    text="I am away until Monday. How long does shipping take? I'll read it then.",
                    message_id="<away1@example.com>", in_reply_to=bot_id, references=f"<q1@example.com> {bot_id}",
                    headers={"Auto-Submitted": "auto-replied"})
        assert (await post_mail(srv, away)).status_code == 200
        # ... and an Exchange out-of-office, which says so only in its subject, too.
        exchange = mail(sender="Kim <kim@example.com>", subject="Automatic reply: Re: Shipping",
                        text="How long does shipping take? Out of office until Monday.",
                        message_id="<away2@example.com>", in_reply_to=bot_id,
                        headers={"X-Auto-Response-Suppress": "All"})
        assert (await post_mail(srv, exchange)).status_code == 200
        await _settle(srv)

        for mid in ("<away1@example.com>", "<away2@example.com>"):
            stored = await by_thread_id(srv.rt, mid)
            assert stored.conversation_id == cid and "auto_reply" in stored.flags
        # Our own answer echoed back to us (a Bcc to support, a mailbox rule, IMAP seeing
        # a sent copy) is our message, not a customer's.
        assert (await post_mail(srv, relay.received[0][2])).status_code == 200
        await _settle(srv)
        outbound = [m for m in await messages(srv.rt, Message.direction == "out") if not m.private]
        assert [m.author_kind for m in outbound] == ["bot"]
        assert len(await messages(srv.rt, Message.direction == "in")) == 3
        assert len(relay.received) == 1  # nothing further was sent


async def test_machine_mail_never_reopens_a_resolved_conversation(database_url: str, relay: SmtpSink) -> None:
    settings = mail_settings(database_url, smtp_host="127.0.0.1", smtp_port=relay.port,
                             smtp_starttls=False)
    async with live_server(settings, responders=build_responders) as srv:
        await seed(srv.rt)
        question = mail(sender="kijitora@example.net", subject="Nyaan", text="Where is my order 1234?",
                        message_id="<q2@example.net>", to=OURS)
        assert (await post_mail(srv, question)).status_code == 200
        cid = (await by_thread_id(srv.rt, "<q2@example.net>")).conversation_id
        await _settle(srv)
        await pipeline.set_status(srv.rt, conversation_id=cid, status="resolved")
        sent_before = len(relay.received)
        # A real RFC 3834 vacation reply from the same person, answering that thread.
        raw = b"In-Reply-To: <q2@example.net>\n" + eml("sisimai_autoreply_rfc3834_away.eml")
        assert (await post_mail(srv, raw)).status_code == 200
        await _settle(srv)
        away = await by_thread_id(srv.rt, "<200503142138.j3QNaaaa222222@neko.example.org>")
        assert away.conversation_id == cid and "auto_reply" in away.flags
        [conv] = await rows(srv.rt, Conversation, Conversation.id == cid)
        assert conv.status == "resolved"
        assert len(relay.received) == sent_before
        assert not [m for m in await messages(srv.rt, Message.direction == "out")
                    if not m.private and m.author_kind == "bot" and m.created_at > conv.resolved_at]


async def _received(relay: SmtpSink, n: int) -> bool:
    return len(relay.received) >= n


async def test_a_robot_without_any_auto_headers_gets_a_bounded_number_of_answers(
    database_url: str, relay: SmtpSink
) -> None:
    """The last guard: a naive responder that marks nothing and echoes the question
    back. The bot's answer limit per conversation ends it, then a person is asked."""
    settings = mail_settings(database_url, smtp_host="127.0.0.1", smtp_port=relay.port,
                             smtp_starttls=False)
    async with live_server(settings, responders=build_responders) as srv:
        await seed(srv.rt)
        parent = "<r0@robot.example>"
        raw = mail(sender="desk@robot.example", subject="Shipping", text="How long does shipping take?",
                   message_id=parent)
        for n in range(1, 7):
            assert (await post_mail(srv, raw)).status_code == 200
            await _settle(srv)
            if len(relay.received) < n:
                break  # we did not answer: the loop is over
            ours = str(relay.mails()[-1]["Message-ID"])
            raw = mail(sender="desk@robot.example", subject="Re: Shipping", text="How long does shipping take?",
                       message_id=f"<r{n}@robot.example>", in_reply_to=ours, references=f"{parent} {ours}")
        assert len(relay.received) == 3  # the policy's max_bot_answers
        cid = (await by_thread_id(srv.rt, parent)).conversation_id
        [conv] = await rows(srv.rt, Conversation, Conversation.id == cid)
        assert conv.handled_by == "human"
