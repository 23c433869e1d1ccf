"""An agent's reply leaves through a real SMTP server (aiosmtpd, started here) as a mail
that threads in the customer's client; the customer's answer to it threads back; a
bounce of it marks it failed; a relay saying 451 once gets it retried, delivered once."""

from __future__ import annotations

import asyncio
from email.message import EmailMessage
from email.utils import getaddresses, parseaddr

import pytest

from inbox.agents import create_agent
from inbox.models import Conversation, Message, OutboxRow
from tests.email_e2e.helpers import (
    OURS,
    SmtpSink,
    by_thread_id,
    eventually,
    mail,
    mail_settings,
    messages,
    post_mail,
    rows,
)
from tests.support.server import LiveServer, live_server

pytestmark = pytest.mark.e2e

SALES = "sales@shop.example"


def _settings(database_url: str, relay: SmtpSink) -> object:
    return mail_settings(database_url, smtp_host="127.0.0.1", smtp_port=relay.port,
                         smtp_starttls=False, email_addresses=(OURS, SALES))


async def _customer_writes(srv: LiveServer) -> int:
    raw = mail(sender="Kim Lee <kim@example.com>", to=SALES, subject="Order 1001 missing",
               text="Hello, my parcel has not arrived.", message_id="<c1@example.com>",
               references="<older@example.com>", in_reply_to="<older@example.com>")
    assert (await post_mail(srv, raw)).status_code == 200
    return (await by_thread_id(srv.rt, "<c1@example.com>")).conversation_id


async def _agent_replies(srv: LiveServer, cid: int, text: str) -> dict[str, object]:
    token = srv.rt.extras.get("test_token")
    if token is None:
        _agent, token = await create_agent(srv.rt, email="ann@shop.example", name="Ann",
                                           role="agent", password="agent-password")
        srv.rt.extras["test_token"] = token
    response = await srv.client.post(f"/api/v1/conversations/{cid}/messages", headers=srv.auth(token),
                                     json={"text": text})
    assert response.status_code == 201, response.text
    body: dict[str, object] = response.json()
    return body


def _parts(msg: EmailMessage) -> dict[str, str]:
    return {part.get_content_type(): part.get_content() for part in msg.walk()
            if part.get_content_maintype() == "text"}


def _dsn(*, our_id: str, recipient: str) -> bytes:
    """A Postfix-style RFC 3464 bounce quoting our message's headers."""
    boundary = "dsn-boundary-1"
    return (
        "From: MAILER-DAEMON@mx.example.com (Mail Delivery System)\r\n"
        f"To: {SALES}\r\nSubject: Undelivered Mail Returned to Sender\r\n"
        "Message-ID: <dsn.1@mx.example.com>\r\nAuto-Submitted: auto-replied\r\n"
        f'MIME-Version: 1.0\r\nContent-Type: multipart/report; report-type=delivery-status; boundary="{boundary}"\r\n\r\n'
        f"--{boundary}\r\nContent-Type: text/plain\r\n\r\nYour message could not be delivered.\r\n\r\n"
        f"--{boundary}\r\nContent-Type: message/delivery-status\r\n\r\n"
        "Reporting-MTA: dns; mx.example.com\r\n\r\n"
        f"Final-Recipient: rfc822; {recipient}\r\nAction: failed\r\nStatus: 5.1.1\r\n"
        f"Diagnostic-Code: smtp; 550 5.1.1 <{recipient}>: Recipient address rejected: User unknown\r\n\r\n"
        f"--{boundary}\r\nContent-Type: text/rfc822-headers\r\n\r\n"
        f"From: {SALES}\r\nTo: {recipient}\r\nSubject: Re: Order 1001 missing\r\nMessage-ID: {our_id}\r\n\r\n"
        f"--{boundary}--\r\n"
    ).encode()


async def test_agent_reply_is_a_threaded_mail_and_the_customers_answer_threads_back(
    database_url: str, relay: SmtpSink
) -> None:
    async with live_server(_settings(database_url, relay)) as srv:  # type: ignore[arg-type]
        cid = await _customer_writes(srv)
        sent = await _agent_replies(srv, cid, "It ships today.\n\nBest,\nAnn <from the shop>")
        await eventually(lambda: _received(relay, 1), what="the reply at the relay")
        [(envelope_from, envelope_to, _raw)] = relay.received
        [msg] = relay.mails()

        assert parseaddr(str(msg["From"]))[1] == SALES == envelope_from  # the address they wrote to
        assert getaddresses([str(msg["To"])]) == [("Kim Lee", "kim@example.com")]
        assert envelope_to == ["kim@example.com"]
        assert str(msg["Subject"]) == "Re: Order 1001 missing"
        assert str(msg["In-Reply-To"]) == "<c1@example.com>"
        assert str(msg["References"]).split() == ["<older@example.com>", "<c1@example.com>"]
        reply_to = parseaddr(str(msg["Reply-To"]))[1]
        local, _, domain = reply_to.partition("@")
        assert domain == "shop.example" and local.startswith("sales+")
        connector = srv.rt.connectors["email"]
        assert connector.conversation_from_token(local.split("+", 1)[1]) == cid  # type: ignore[attr-defined]
        assert msg["Auto-Submitted"] is None  # a person wrote this
        parts = _parts(msg)
        assert "It ships today." in parts["text/plain"]
        assert "It ships today." in parts["text/html"] and "&lt;from the shop&gt;" in parts["text/html"]

        our_id = str(msg["Message-ID"])
        stored = await eventually(lambda: _sent(srv, int(sent["id"])), what="delivery_status sent")  # type: ignore[call-overload]
        assert stored.provider_message_id == our_id == stored.thread_message_id

        # The customer answers in their client: In-Reply-To is our Message-ID.
        answer = mail(sender="kim@example.com", to=reply_to, subject="Re: Order 1001 missing",
                      text="Great, thanks!", message_id="<c2@example.com>", in_reply_to=our_id,
                      references=f"<older@example.com> <c1@example.com> {our_id}")
        assert (await post_mail(srv, answer)).status_code == 200
        assert (await by_thread_id(srv.rt, "<c2@example.com>")).conversation_id == cid

        # Our next reply bounces: the DSN quotes its Message-ID, and it is marked failed.
        second = await _agent_replies(srv, cid, "You're welcome!")
        await eventually(lambda: _received(relay, 2), what="the second reply")
        second_id = str(relay.mails()[1]["Message-ID"])
        assert str(relay.mails()[1]["In-Reply-To"]) == "<c2@example.com>"
        await eventually(lambda: _sent(srv, int(second["id"])), what="second reply sent")  # type: ignore[call-overload]
        response = await post_mail(srv, _dsn(our_id=second_id, recipient="kim@example.com"))
        assert response.status_code == 200 and response.json()["statuses"] == 1
        [failed] = await messages(srv.rt, Message.id == int(second["id"]))  # type: ignore[call-overload]
        assert (failed.delivery_status, failed.error_code) == ("failed", "5.1.1")
        assert "User unknown" in (failed.error_text or "")
        # The bounce itself sits quietly in that conversation (no new one, nothing unread).
        before = await _conversation(srv, cid)
        assert (await by_thread_id(srv.rt, "<dsn.1@mx.example.com>")).conversation_id == cid
        assert len(await rows(srv.rt, Conversation)) == 1
        assert before.unread_count == 0 and before.status == "open"
        # The first reply is untouched, and the bounce started no reply of ours.
        assert (await _sent(srv, int(sent["id"]))) is not None  # type: ignore[call-overload]
        assert len(relay.received) == 2


async def test_a_451_from_the_relay_is_retried_and_the_mail_arrives_once(
    database_url: str, relay: SmtpSink
) -> None:
    relay.refuse = ["451 4.3.0 Temporary local problem, try again"]
    async with live_server(_settings(database_url, relay)) as srv:  # type: ignore[arg-type]
        cid = await _customer_writes(srv)
        sent = await _agent_replies(srv, cid, "On its way.")
        await eventually(lambda: _received(relay, 1), what="the retried reply")
        stored = await eventually(lambda: _sent(srv, int(sent["id"])), what="sent after retry")  # type: ignore[call-overload]
        await asyncio.sleep(0.5)  # any duplicate send would land by now (retry cap 0.2 s)
        assert relay.attempts == 2 and len(relay.received) == 1
        [row] = await rows(srv.rt, OutboxRow, OutboxRow.message_id == stored.id)
        assert (row.state, row.attempts) == ("done", 2)
        assert stored.provider_message_id == str(relay.mails()[0]["Message-ID"])


async def _conversation(srv: LiveServer, cid: int) -> Conversation:
    [conv] = await rows(srv.rt, Conversation, Conversation.id == cid)
    assert isinstance(conv, Conversation)
    return conv


async def _received(relay: SmtpSink, n: int) -> bool:
    return len(relay.received) >= n


async def _sent(srv: LiveServer, message_id: int) -> Message | None:
    [message] = await messages(srv.rt, Message.id == message_id)
    return message if message.delivery_status == "sent" else None
