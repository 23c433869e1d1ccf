"""Helpers for the email end-to-end tests: mail in through the real webhook / SMTP
listener, a real aiosmtpd server standing in for our outbound relay, and database reads."""

from __future__ import annotations

import asyncio
import email.policy
import re
import smtplib
from collections.abc import Awaitable, Callable
from email.message import EmailMessage
from email.parser import BytesParser
from pathlib import Path
from typing import Any

import httpx
from aiosmtpd.smtp import SMTP, Envelope, Session
from sqlalchemy import select

from inbox.models import Contact, Conversation, Message
from inbox.runtime import Runtime
from inbox.settings import Settings
from tests.conftest import FIXTURES, make_settings
from tests.support.server import LiveServer, free_port

EMAIL_DIR: Path = FIXTURES / "email"
OURS = "support@shop.example"
SECRET = "test-email-secret"


def mail_settings(database_url: str, **overrides: Any) -> Settings:
    """Test settings with the email channel on (webhook secret, our one address)."""
    base: dict[str, Any] = dict(email_addresses=(OURS,), email_secret=SECRET)
    base.update(overrides)
    return make_settings(database_url, **base)


def eml(name: str) -> bytes:
    """One fixture message, byte for byte."""
    return (EMAIL_DIR / name).read_bytes()


async def post_mail(srv: LiveServer, raw: bytes) -> httpx.Response:
    """POST a raw message to /webhooks/email with the shared secret."""
    return await srv.client.post("/webhooks/email", content=raw,
                                 headers={"Authorization": f"Bearer {SECRET}",
                                          "Content-Type": "message/rfc822"})


def smtp_send(port: int, raw: bytes, *, to: str = OURS, sender: str = "customer@example.com") -> None:
    """Hand `raw` to an SMTP server with the standard library client (blocking).

    On the wire SMTP lines end in CRLF; smtplib sends bytes as they are, so LF-only
    fixtures are converted here, as a mail client would before sending, and an mbox
    "From " separator line (some fixtures are mbox entries) is not part of a mail."""
    if raw.startswith(b"From "):
        raw = raw.split(b"\n", 1)[1]
    wire = re.sub(rb"\r?\n", b"\r\n", raw)
    with smtplib.SMTP("127.0.0.1", port, timeout=10) as client:
        client.sendmail(sender, [to], wire)


def mail(*, sender: str, subject: str, text: str, message_id: str, to: str = OURS,
         in_reply_to: str | None = None, references: str | None = None,
         headers: dict[str, str] | None = None) -> bytes:
    """A plain customer mail."""
    msg = EmailMessage()
    msg["From"] = sender
    msg["To"] = to
    msg["Subject"] = subject
    msg["Message-ID"] = message_id
    if in_reply_to:
        msg["In-Reply-To"] = in_reply_to
    if references:
        msg["References"] = references
    for name, value in (headers or {}).items():
        msg[name] = value
    msg.set_content(text)
    return bytes(msg)


async def rows(rt: Runtime, model: Any, *where: Any) -> list[Any]:
    """Every row of `model` (matching `where`), in id order."""
    key = model.id if hasattr(model, "id") else None
    async with rt.sessions() as session:
        query = select(model).where(*where) if where else select(model)
        if key is not None:
            query = query.order_by(key)
        return list((await session.exec(query)).scalars().all())  # type: ignore[call-overload]


async def messages(rt: Runtime, *where: Any) -> list[Message]:
    """Stored messages, oldest first."""
    return await rows(rt, Message, *where)


async def by_thread_id(rt: Runtime, message_id: str) -> Message:
    """The one message stored under this email Message-ID."""
    found = await messages(rt, Message.thread_message_id == message_id)
    assert len(found) == 1, (message_id, found)
    return found[0]


async def conversation(rt: Runtime, cid: int) -> Conversation:
    """One conversation, fresh from the database."""
    async with rt.sessions() as session:
        conv = await session.get(Conversation, cid)
    assert conv is not None
    return conv


async def contact(rt: Runtime, contact_id: int) -> Contact:
    """One contact, fresh from the database."""
    async with rt.sessions() as session:
        found = await session.get(Contact, contact_id)
    assert found is not None
    return found


async def eventually(check: Callable[[], Awaitable[Any]], *, timeout: float = 10.0,
                     what: str = "condition") -> Any:
    """Poll `check` until it returns something truthy (and return that)."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        value = await check()
        if value:
            return value
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.05)


def parse(raw: bytes) -> EmailMessage:
    """A received mail, parsed with the modern policy."""
    msg = BytesParser(policy=email.policy.default).parsebytes(raw)
    assert isinstance(msg, EmailMessage)
    return msg


class SmtpSink:
    """A real aiosmtpd server on the test's loop: our outbound relay.

    `refuse` holds replies to give (one per DATA) before accepting, e.g. "451 4.3.0 busy".
    """

    def __init__(self) -> None:
        self.port = free_port()
        self.received: list[tuple[str, list[str], bytes]] = []
        self.refuse: list[str] = []
        self.attempts = 0
        self._server: asyncio.Server | None = None

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        self.attempts += 1
        if self.refuse:
            return self.refuse.pop(0)
        content = envelope.original_content or b""
        self.received.append((str(envelope.mail_from), list(envelope.rcpt_tos), bytes(content)))
        return "250 2.0.0 OK"

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(
            lambda: SMTP(self, hostname="relay.test", enable_SMTPUTF8=True),
            host="127.0.0.1", port=self.port)

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()

    def mails(self) -> list[EmailMessage]:
        """What the relay accepted, parsed."""
        return [parse(raw) for _, _, raw in self.received]
