"""Email threading through the real webhook and pipeline: headers (in any arrival
order), then our reply token, then subject + sender within the window; a changed
subject on a reply starts a new conversation."""

from __future__ import annotations

import itertools

import pytest

from inbox import pipeline
from inbox.models import Conversation
from tests.email_e2e.helpers import (
    OURS,
    by_thread_id,
    eml,
    mail,
    mail_settings,
    post_mail,
    rows,
)
from tests.support.server import LiveServer, live_server

pytestmark = pytest.mark.e2e

A2 = (
    "mail_rfc2822_A2_thread_1_original.eml",
    "mail_rfc2822_A2_thread_2_reply.eml",
    "mail_rfc2822_A2_thread_3_reply_to_reply.eml",
)
A2_IDS = ("<1234@local.machine.example>", "<3456@example.net>", "<abcd.1234@local.machine.tld>")


async def _in(srv: LiveServer, raw: bytes, message_id: str) -> int:
    """POST one mail; the id of the conversation it landed in."""
    response = await post_mail(srv, raw)
    assert response.status_code == 200, response.text
    return (await by_thread_id(srv.rt, message_id)).conversation_id


@pytest.mark.parametrize("order", list(itertools.permutations(range(3))),
                         ids=lambda o: "".join(str(i + 1) for i in o))
async def test_rfc2822_a2_thread_is_one_conversation_in_any_arrival_order(
    database_url: str, order: tuple[int, ...]
) -> None:
    async with live_server(mail_settings(database_url)) as srv:
        conversations = {await _in(srv, eml(A2[i]), A2_IDS[i]) for i in order}
        assert len(conversations) == 1
        assert len(await rows(srv.rt, Conversation)) == 1


async def test_outlook_reply_without_headers_threads_by_subject_and_sender(database_url: str) -> None:
    async with live_server(mail_settings(database_url)) as srv:
        first = await _in(srv, mail(sender="Kim <kim@example.com>", subject="Order 1001 missing",
                                    text="My parcel did not come.", message_id="<k1@example.com>"),
                          "<k1@example.com>")
        await pipeline.set_status(srv.rt, conversation_id=first, status="resolved")
        # Outlook dropped In-Reply-To/References and wrote "RE:" in capitals.
        again = await _in(srv, mail(sender="kim@example.com", subject="RE: Order 1001 missing",
                                    text="Still nothing!", message_id="<k2@example.com>"),
                          "<k2@example.com>")
        assert again == first
        conv = (await rows(srv.rt, Conversation, Conversation.id == first))[0]
        assert conv.status == "open"  # the customer's reply within the window reopened it
        # The same subject from someone else is someone else's conversation.
        other = await _in(srv, mail(sender="lee@example.com", subject="RE: Order 1001 missing",
                                    text="Mine too", message_id="<l1@example.com>"),
                          "<l1@example.com>")
        assert other != first


async def test_a_reply_with_a_changed_subject_starts_a_new_conversation(database_url: str) -> None:
    async with live_server(mail_settings(database_url)) as srv:
        first = await _in(srv, mail(sender="kim@example.com", subject="Order 1001 missing",
                                    text="Where is it?", message_id="<k1@example.com>"),
                          "<k1@example.com>")
        same = await _in(srv, mail(sender="kim@example.com", subject="Re: Order 1001 missing",
                                   text="Any news?", message_id="<k2@example.com>",
                                   in_reply_to="<k1@example.com>", references="<k1@example.com>"),
                         "<k2@example.com>")
        assert same == first
        # The customer hits "reply" on the old thread to ask something else.
        new = await _in(srv, mail(sender="kim@example.com", subject="Do you ship to Norway?",
                                  text="New question.", message_id="<k3@example.com>",
                                  in_reply_to="<k2@example.com>",
                                  references="<k1@example.com> <k2@example.com>"),
                        "<k3@example.com>")
        assert new != first
        conv = (await rows(srv.rt, Conversation, Conversation.id == new))[0]
        assert conv.subject == "Do you ship to Norway?"


async def test_reply_token_threads_a_reply_that_lost_its_headers(database_url: str) -> None:
    async with live_server(mail_settings(database_url)) as srv:
        first = await _in(srv, mail(sender="kim@example.com", subject="Order 1001 missing",
                                    text="Where is it?", message_id="<k1@example.com>"),
                          "<k1@example.com>")
        other = await _in(srv, mail(sender="lee@example.com", subject="Refund",
                                    text="Refund please", message_id="<l1@example.com>"),
                          "<l1@example.com>")
        token = srv.rt.connectors["email"].reply_token_for(first)  # type: ignore[attr-defined]
        local, _, domain = OURS.partition("@")
        to_token = f"{local}+{token}@{domain}"
        # From the customer's other address, no threading headers: only the token tells.
        by_token = await _in(srv, mail(sender="kim.work@example.org", to=to_token,
                                       subject="Re: Order 1001 missing", text="It came!",
                                       message_id="<kw1@example.org>"), "<kw1@example.org>")
        assert by_token == first
        # Headers come first: they name Lee's conversation, the token Kim's.
        headers_win = await _in(srv, mail(sender="lee@example.com", to=to_token, subject="Re: Refund",
                                          text="Thanks", message_id="<l2@example.com>",
                                          in_reply_to="<l1@example.com>"), "<l2@example.com>")
        assert headers_win == other
        # A changed subject is a new topic, token or not.
        new_topic = await _in(srv, mail(sender="kim@example.com", to=to_token,
                                        subject="Gift wrapping?", text="Do you wrap gifts?",
                                        message_id="<k2@example.com>"), "<k2@example.com>")
        assert new_topic not in (first, other)
        # A forged token proves nothing.
        forged = await _in(srv, mail(sender="eve@example.com", to=f"{local}+c{first}-aaaaaaaaaaaaaaaa@{domain}",
                                     subject="Re: Order 1001 missing", text="Let me in",
                                     message_id="<e1@example.com>"), "<e1@example.com>")
        assert forged not in (first, other, new_topic)


async def test_a_topic_change_inside_a_thread_splits_it_the_same_way_in_any_arrival_order(
    database_url: str
) -> None:
    """k1 "Order 1001 missing", k2 a reply to it, k3 a reply to k2 on a new topic: k1
    and k2 are one conversation and k3 another, whatever order the three arrive in."""
    async with live_server(mail_settings(database_url)) as srv:
        for n, order in enumerate(itertools.permutations(range(3))):
            who, ids = f"kim{n}@example.com", [f"<k{i}.{n}@example.com>" for i in (1, 2, 3)]
            raws = [
                mail(sender=who, subject="Order 1001 missing", text="Where is it?", message_id=ids[0]),
                mail(sender=who, subject="Re: Order 1001 missing", text="Any news?",
                     message_id=ids[1], in_reply_to=ids[0], references=ids[0]),
                mail(sender=who, subject="Do you ship to Norway?", text="New question.",
                     message_id=ids[2], in_reply_to=ids[1], references=f"{ids[0]} {ids[1]}"),
            ]
            convs = {}
            for i in order:
                convs[i] = await _in(srv, raws[i], ids[i])
            assert convs[0] == convs[1] != convs[2], order
