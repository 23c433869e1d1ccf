"""The app polls a real Dovecot (started by the test, the fixture of
tests/connectors/email) and takes each new mail once, across a server restart."""

from __future__ import annotations

import asyncio
import imaplib

import pytest

from connectors.email.imap_poller import ImapSettings
from inbox.models import Event, KeyValue, Message
from tests.connectors.email.test_email_imap import DOVECOT, PASSWORD, USER, dovecot  # noqa: F401
from tests.email_e2e.helpers import eml, eventually, mail, mail_settings, messages, rows
from tests.support.server import live_server

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(not DOVECOT.exists(), reason="Dovecot (/usr/sbin/dovecot) is not installed"),
]


def _append(imap_settings: ImapSettings, raw: bytes, *, seen: bool = False) -> None:
    imap = imaplib.IMAP4(imap_settings.host, imap_settings.port)
    imap.login(USER, PASSWORD)
    imap.append("INBOX", "(\\Seen)" if seen else None, None, raw)
    imap.logout()


def _customer(n: int) -> bytes:
    return mail(sender=f"Customer {n} <c{n}@example.com>", subject=f"Order {n}",
                text=f"Where is order {n}?", message_id=f"<imap{n}@example.com>")


async def _count(rt: object, n: int) -> bool:
    return len(await messages(rt)) >= n  # type: ignore[arg-type]


async def test_new_mail_is_taken_once_across_a_server_restart(
    database_url: str, dovecot: ImapSettings  # noqa: F811
) -> None:
    settings = mail_settings(database_url, imap_host=dovecot.host, imap_port=dovecot.port,
                             imap_username=USER, imap_password=PASSWORD, imap_ssl=False,
                             imap_interval=0.2)
    await asyncio.to_thread(_append, dovecot, _customer(0), seen=True)  # read by a person before
    await asyncio.to_thread(_append, dovecot, _customer(1))
    await asyncio.to_thread(_append, dovecot, _customer(2))
    async with live_server(settings) as srv:
        await eventually(lambda: _count(srv.rt, 2), what="the first two mails")
        await asyncio.sleep(0.6)  # a few more polls take nothing again
        assert len(await messages(srv.rt)) == 2

    # Mail arrives while the app is down: the next server (same database) takes it.
    await asyncio.to_thread(_append, dovecot, eml("talon_reply_gmail.eml"))
    async with live_server(settings) as srv:
        await eventually(lambda: _count(srv.rt, 3), what="the mail sent during the restart")
        await asyncio.to_thread(_append, dovecot, _customer(4))
        await eventually(lambda: _count(srv.rt, 4), what="mail after the restart")
        await asyncio.sleep(0.6)
        stored = await messages(srv.rt)
        created = [e for e in await rows(srv.rt, Event) if e.type == "message.created"]
        [cursor] = await rows(srv.rt, KeyValue)
    ids = [m.thread_message_id for m in stored]
    assert ids[:2] == ["<imap1@example.com>", "<imap2@example.com>"]
    assert ids[3] == "<imap4@example.com>" and len(ids) == len(set(ids)) == 4
    assert len(created) == 4  # no duplicate stored, none announced twice
    assert cursor.value["last_uid"] == 5  # uid 1 was the person's, 2..5 ours
    assert all(m.direction == "in" for m in stored)
    assert not any(m.thread_message_id == "<imap0@example.com>" for m in stored)
    assert isinstance(stored[2], Message) and "Hello" in stored[2].text
