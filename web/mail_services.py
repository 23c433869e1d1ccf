"""Inbound mail without a webhook: the SMTP listener and the IMAP poller, wired to the
pipeline. Started by the app's lifespan when configured (INBOX_SMTP_LISTEN_PORT, which
`inbox serve --smtp-port` sets; INBOX_IMAP_HOST)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from sqlalchemy import text

from connectors.email.imap_poller import ImapCursor, ImapPoller, ImapSettings
from connectors.email.smtp_listener import start_smtp_server
from inbox import pipeline
from inbox.models import KeyValue
from inbox.runtime import Runtime
from inbox.types import utcnow

log = logging.getLogger(__name__)

Stop = Callable[[], Awaitable[None]]


def mail_handler(rt: Runtime) -> Callable[[bytes], Awaitable[None]]:
    """The callback that stores one raw mail (and applies it as a bounce report).

    It returns only after the message is committed, so the SMTP client hears 250 (and
    the IMAP poller marks the mail seen) only for mail that is safely stored.
    """

    async def on_message(raw: bytes) -> None:
        connector: Any = rt.connector("email")
        for inbound in connector.parse_raw(raw):
            await pipeline.ingest(rt, inbound)
        for update in connector.status_raw(raw):
            await pipeline.record_status(rt, update)

    return on_message


def _cursor_store(rt: Runtime, key: str) -> tuple[Callable[[], Awaitable[ImapCursor | None]],
                                                   Callable[[ImapCursor], Awaitable[None]]]:
    """Load/save the IMAP cursor in the database, so a restart (on any host) resumes."""

    async def load() -> ImapCursor | None:
        async with rt.sessions() as session:
            row = await session.get(KeyValue, key)
        if row is None:
            return None
        return ImapCursor(int(row.value["uidvalidity"]), int(row.value["last_uid"]))

    async def save(cursor: ImapCursor) -> None:
        async with rt.sessions() as session, session.begin():
            row = await session.get(KeyValue, key)
            value = {"uidvalidity": cursor.uidvalidity, "last_uid": cursor.last_uid}
            if row is None:
                session.add(KeyValue(key=key, value=value))
            else:
                row.value, row.updated_at = value, utcnow()

    return load, save


# The PostgreSQL advisory lock naming "the worker that polls IMAP" (arbitrary, fixed).
IMAP_LEADER_LOCK = 727_002


async def _run_as_leader(rt: Runtime, poller: ImapPoller, stop: asyncio.Event) -> None:
    """Poll IMAP in one worker only: on PostgreSQL, the one holding an advisory lock.

    The lock lives as long as the holder's connection, so when that worker dies another
    takes over within one interval. SQLite serves one worker: it simply polls.
    """
    if rt.settings.is_sqlite:
        await poller.run(stop)
        return
    while not stop.is_set():
        try:
            async with rt.engine.connect() as conn:
                got = (await conn.execute(text("SELECT pg_try_advisory_lock(:k)"),
                                          {"k": IMAP_LEADER_LOCK})).scalar()
                if got:
                    try:
                        await poller.run(stop)
                    finally:
                        await conn.execute(text("SELECT pg_advisory_unlock(:k)"),
                                           {"k": IMAP_LEADER_LOCK})
                    return
        except Exception:  # the store is away: try again next round
            log.exception("could not take the IMAP polling lock")
        try:
            await asyncio.wait_for(stop.wait(), timeout=rt.settings.imap_interval)
        except TimeoutError:
            pass


async def start_mail_services(rt: Runtime) -> list[Stop]:
    """Start what is configured; returns the functions that stop them."""
    s = rt.settings
    stops: list[Stop] = []
    if "email" not in rt.connectors:
        if s.smtp_listen_port or s.imap_host:
            log.warning("SMTP listener / IMAP poller need the email channel (set INBOX_EMAIL_SECRET or INBOX_SMTP_HOST)")
        return stops
    handler = mail_handler(rt)
    if s.smtp_listen_port:
        server = await start_smtp_server(host=s.smtp_listen_host, port=s.smtp_listen_port,
                                         addresses=s.email_addresses, on_message=handler)
        log.info("accepting mail by SMTP on %s:%s", s.smtp_listen_host, s.smtp_listen_port)

        async def stop_smtp() -> None:
            server.close()
            await server.wait_closed()

        stops.append(stop_smtp)
    if s.imap_host and s.imap_username and s.imap_password:
        load, save = _cursor_store(rt, f"imap:{s.imap_username}@{s.imap_host}/{s.imap_folder}")
        poller = ImapPoller(
            ImapSettings(host=s.imap_host, username=s.imap_username, password=s.imap_password,
                         port=s.imap_port, ssl=s.imap_ssl, starttls=s.imap_starttls,
                         folder=s.imap_folder),
            on_message=handler, load_cursor=load, save_cursor=save, interval=s.imap_interval)
        stop_event = asyncio.Event()
        task = asyncio.get_running_loop().create_task(_run_as_leader(rt, poller, stop_event))

        async def stop_imap() -> None:
            stop_event.set()
            try:
                await asyncio.wait_for(task, timeout=10)
            except (TimeoutError, asyncio.CancelledError):
                task.cancel()

        stops.append(stop_imap)
    return stops
