"""Mail reaches the inbox through our SMTP listener, sent with the standard smtplib client."""

from __future__ import annotations

import asyncio
import smtplib
from email.message import EmailMessage

import pytest
from sqlalchemy import select

from inbox.models import Message
from tests.conftest import FIXTURES, make_settings
from tests.support.server import free_port, live_server

pytestmark = pytest.mark.e2e


def _send(port: int, raw: bytes, *, to: str) -> None:
    with smtplib.SMTP("127.0.0.1", port, timeout=10) as client:
        client.sendmail("customer@example.com", [to], raw)


async def test_mail_sent_to_our_smtp_listener_is_stored_once_per_message(sqlite_url: str) -> None:
    port = free_port()
    settings = make_settings(sqlite_url, smtp_listen_port=port,
                             email_addresses=("support@shop.example",))
    async with live_server(settings) as srv:
        msg = EmailMessage()
        msg["From"] = "Kim Customer <kim@example.com>"
        msg["To"] = "support@shop.example"
        msg["Subject"] = "Where is my order?"
        msg["Message-ID"] = "<smtp-test-1@example.com>"
        msg.set_content("Hello, my parcel has not arrived.")
        await asyncio.to_thread(_send, port, bytes(msg), to="support@shop.example")
        fixture = (FIXTURES / "email" / "mail_thunderbird_reply_in_reply_to_references.eml").read_bytes()
        await asyncio.to_thread(_send, port, fixture, to="support@shop.example")
        with pytest.raises(smtplib.SMTPRecipientsRefused):
            await asyncio.to_thread(_send, port, bytes(msg), to="someone-else@example.org")
        async with srv.rt.sessions() as session:
            rows = (await session.exec(select(Message))).scalars().all()  # type: ignore[call-overload]
        assert sorted(m.thread_message_id or "" for m in rows)[-1] == "<smtp-test-1@example.com>"
        assert len(rows) == 2
        assert any("parcel has not arrived" in m.text for m in rows)



async def test_several_workers_share_one_smtp_port(sqlite_url: str) -> None:
    port = free_port()
    settings = make_settings(sqlite_url, smtp_listen_port=port, email_addresses=("support@shop.example",))
    async with live_server(settings) as first, live_server(settings):
        for n in range(4):
            msg = EmailMessage()
            msg["From"] = "kim@example.com"
            msg["To"] = "support@shop.example"
            msg["Subject"] = f"question {n}"
            msg["Message-ID"] = f"<multi-{n}@example.com>"
            msg.set_content("hello")
            await asyncio.to_thread(_send, port, bytes(msg), to="support@shop.example")
        async with first.rt.sessions() as session:
            rows = (await session.exec(select(Message))).scalars().all()  # type: ignore[call-overload]
        assert sorted(m.thread_message_id for m in rows) == [f"<multi-{n}@example.com>" for n in range(4)]
