"""Every upstream .eml fixture through the real server: the webhook and the SMTP listener
store each one, flag machine mail, never answer 500, and a bounce of our own mail marks
our message failed with the reason."""

from __future__ import annotations

import asyncio
import re

import pytest

from connectors.email import parse_message
from inbox.models import Conversation, Message
from inbox.types import MACHINE_FLAGS, utcnow
from tests.email_e2e.helpers import (
    EMAIL_DIR,
    OURS,
    by_thread_id,
    eml,
    mail,
    mail_settings,
    messages,
    post_mail,
    rows,
    smtp_send,
)
from tests.support.server import free_port, live_server

pytestmark = pytest.mark.e2e

# Flags each fixture must carry, read off its headers (SOURCES.md): Auto-Submitted
# (any value but "no") / Exchange's "Automatic reply" subject -> auto_reply;
# multipart/report delivery-status or MAILER-DAEMON / X-Failed-Recipients -> bounce;
# disposition-notification -> read_receipt; Precedence: bulk / List-Id -> bulk;
# a multipart whose closing boundary is missing (sisimai's truncated copies) -> broken.
MACHINE = {
    "cpython_dsn_disk_quota_multipart_report.eml": {"bounce", "bulk"},
    "flanker_bounce_gmail_dsn_5.1.1.eml": {"auto_reply", "bounce"},
    "flanker_bounce_gmail_plaintext_no_dsn.eml": {"bounce"},
    "flanker_mdn_read_receipt.eml": {"read_receipt"},
    "flanker_raw_8bit_latin1_from_header_quoted_reply.eml": {"bulk"},
    "mail_dsn_delayed_452_mailbox_full.eml": {"auto_reply", "bounce"},
    "mail_dsn_permanent_failure_553_unknown_address.eml": {"auto_reply", "bounce"},
    "sisimai_autoreply_exchange_out_of_office.eml": {"auto_reply"},
    "sisimai_autoreply_exchange_windows-1252_qp.eml": {"auto_reply"},
    "sisimai_autoreply_html_alternative_precedence_bulk.eml": {"auto_reply", "bulk"},
    "sisimai_autoreply_rfc3834_away.eml": {"auto_reply"},
    "sisimai_bounce_office365.eml": {"auto_reply", "bounce", "broken", "bulk"},
    "sisimai_bounce_postfix.eml": {"auto_reply", "bounce", "broken"},
}
ALL = sorted(p.name for p in EMAIL_DIR.glob("*.eml"))
# Five different shapes for the SMTP listener: a Gmail reply, raw 8-bit Korean, an
# RFC 3834 auto-reply, a DSN and an MDN.
BY_SMTP = (
    "talon_reply_gmail.eml",
    "mail_korean_ks_c_5601-1987_8bit.eml",
    "sisimai_autoreply_rfc3834_away.eml",
    "flanker_bounce_gmail_dsn_5.1.1.eml",
    "flanker_mdn_read_receipt.eml",
)
# The DSN fixture quotes this Message-ID as the undelivered original: pretend it is ours.
BOUNCED_ID = "<200712232303.lBNN3jDq002941@mail12.rrrr.com.au>"


def test_the_corpus_is_there() -> None:
    assert len(ALL) >= 37, ALL
    assert set(MACHINE) <= set(ALL) and set(BY_SMTP) <= set(ALL)


async def _our_sent_message(srv_rt: object, *, to: str, message_id: str) -> int:
    """An outbound message already sent to `to` under `message_id` (as the dispatcher
    would have stored it), in a conversation with that customer."""
    from inbox import pipeline
    from inbox.runtime import Runtime

    assert isinstance(srv_rt, Runtime)
    first = parse_message(mail(sender=to, subject="Where is my parcel?", text="Hello?",
                               message_id="<ask.1@zzzzzzz.com>"), our_addresses=(OURS,))
    result = await pipeline.ingest(srv_rt, first)
    async with srv_rt.sessions() as session, session.begin():
        out = Message(conversation_id=result.conversation_id, channel="email", direction="out",
                      author_kind="agent", text="It is on its way.", provider_message_id=message_id,
                      thread_message_id=message_id, delivery_status="sent", created_at=utcnow())
        session.add(out)
        await session.flush()
        return out.id or 0


async def test_every_fixture_is_stored_through_the_webhook_with_its_flags(database_url: str) -> None:
    async with live_server(mail_settings(database_url)) as srv:
        ours = await _our_sent_message(srv.rt, to="edwin@zzzzzzz.com", message_id=BOUNCED_ID)
        statuses = {}
        for name in ALL:
            response = await post_mail(srv, eml(name))
            assert response.status_code == 200, (name, response.status_code, response.text)
            statuses[name] = response.json()["statuses"]
            # The same delivery again (a relay retrying) changes nothing.
            again = await post_mail(srv, eml(name))
            assert again.status_code == 200, (name, again.text)

        stored = {m.provider_message_id: m for m in await messages(srv.rt, Message.direction == "in")}
        for name in ALL:
            pid = parse_message(eml(name), our_addresses=(OURS,)).provider_message_id
            assert pid in stored, f"{name} was not stored"
            assert set(stored[pid].flags) == MACHINE.get(name, set()), name
        assert len(stored) == len(ALL) + 1  # + the customer's question above

        # The permanent-failure DSN quotes our message: it is failed, with the reason.
        [bounced] = await messages(srv.rt, Message.id == ours)
        assert bounced.delivery_status == "failed"
        assert bounced.error_code == "5.3.0"
        assert "Unknown E-Mail Address" in (bounced.error_text or "")
        assert statuses["mail_dsn_permanent_failure_553_unknown_address.eml"] == 1
        # The delayed DSN (4.2.2, the MTA still tries) reports nothing final.
        assert statuses["mail_dsn_delayed_452_mailbox_full.eml"] == 0
        # ... and it sits in the conversation of the mail it concerns, not in a new one.
        dsn = parse_message(eml("mail_dsn_permanent_failure_553_unknown_address.eml"),
                            our_addresses=(OURS,)).provider_message_id
        assert stored[dsn].conversation_id == bounced.conversation_id
        # Machine mail gives agents no unread work.
        for conv in await rows(srv.rt, Conversation):
            inbound = await messages(srv.rt, Message.conversation_id == conv.id, Message.direction == "in")
            people = [m for m in inbound if not set(m.flags) & MACHINE_FLAGS]
            assert conv.unread_count == len(people), [m.provider_message_id for m in inbound]


async def test_a_sample_arrives_through_the_smtp_listener(database_url: str) -> None:
    port = free_port()
    async with live_server(mail_settings(database_url, smtp_listen_port=port)) as srv:
        for name in BY_SMTP:
            raw = eml(name)
            # A distinct Message-ID, so this is not the webhook test's mail again.
            own = parse_message(raw, our_addresses=()).thread.message_id
            assert own, name
            raw = raw.replace(own.encode(), b"<smtp." + own[1:].encode(), 1)
            await asyncio.to_thread(smtp_send, port, raw)
            stored = await by_thread_id(srv.rt, "<smtp." + own[1:])
            assert set(stored.flags) == MACHINE.get(name, set()), name
            assert stored.text.strip(), name
        korean = await by_thread_id(srv.rt, "<smtp.from@example.com>")
        assert "스티해" in korean.text
        gmail = await by_thread_id(srv.rt, "<smtp." + parse_message(
            eml("talon_reply_gmail.eml"), our_addresses=()).thread.message_id[1:])  # type: ignore[index]
        assert re.sub(r"\s+", " ", gmail.text).strip() == "Hello"


async def test_attachments_are_kept_and_downloadable(database_url: str) -> None:
    from urllib.parse import unquote

    from inbox.agents import create_agent

    async with live_server(mail_settings(database_url)) as srv:
        _agent, token = await create_agent(srv.rt, email="ann@shop.example", name="Ann", role="agent")
        got = {}
        for name in ("mail_attachment_pdf.eml", "mail_attachment_nonascii_filename.eml"):
            assert (await post_mail(srv, eml(name))).status_code == 200
            pid = parse_message(eml(name), our_addresses=(OURS,)).provider_message_id
            [message] = await messages(srv.rt, Message.provider_message_id == pid)
            [attachment] = message.attachments
            response = await srv.client.get(f"/api/v1/files/{attachment['file_id']}", headers=srv.auth(token))
            assert response.status_code == 200
            disposition = response.headers["content-disposition"]
            got[name] = (attachment["filename"], len(response.content), unquote(disposition.split("''", 1)[1]))
        # mikel/mail asserts 1026 decoded bytes for the PDF and the filename ciële.txt.
        assert got["mail_attachment_pdf.eml"][1] == 1026
        assert got["mail_attachment_nonascii_filename.eml"][0] == "ciële.txt"
        assert got["mail_attachment_nonascii_filename.eml"][2] == "ciële.txt"
