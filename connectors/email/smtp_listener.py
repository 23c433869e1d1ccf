"""An SMTP server that takes mail for our support addresses (`inbox serve --smtp-port`).

`InboxSmtpHandler` is an aiosmtpd handler. Its promises:

- RCPT TO one of our addresses (or its plus form, `support+<token>@...`) gets 250;
  any other address gets `550 5.1.1`, so we are never an open relay;
- on DATA the raw bytes (with a `Delivered-To:` line per accepted recipient prepended,
  as Postfix does, so a Bcc'd address is still known) go to the async callback
  `on_message(raw)`, and the client hears 250 only after it returned;
- if the callback raises, the client hears `451 4.3.0` and keeps the mail to retry:
  nothing is lost between "accepted" and "stored".

`start_smtp_server(...)` runs the handler on the caller's event loop (where the
pipeline, its database engine and hub live). With aiosmtpd's threaded `Controller`,
pass `loop=` the app's loop and the callback is run there.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

from aiosmtpd.smtp import SMTP, Envelope, Session

__all__ = ["InboxSmtpHandler", "OnMessage", "accepts", "start_smtp_server"]

log = logging.getLogger(__name__)

OnMessage = Callable[[bytes], Awaitable[None]]
# 25 MiB: the common provider limit for a whole message (Gmail, Outlook).
DATA_SIZE_LIMIT = 25 * 1024 * 1024


def accepts(address: str, ours: Iterable[str]) -> bool:
    """Whether `address` is one of `ours`, directly or with a `+tag`, case-insensitively."""
    local, _, domain = address.strip().strip("<>").casefold().rpartition("@")
    if not local:
        return False
    base = local.split("+", 1)[0]
    wanted = {a.strip().casefold() for a in ours}
    return f"{local}@{domain}" in wanted or f"{base}@{domain}" in wanted


class InboxSmtpHandler:
    """aiosmtpd handler: our recipients only, raw bytes to `on_message` (see module doc)."""

    def __init__(
        self,
        *,
        addresses: Iterable[str],
        on_message: OnMessage,
        loop: asyncio.AbstractEventLoop | None = None,
    ) -> None:
        self.addresses = tuple(a.strip().casefold() for a in addresses if a.strip())
        self.on_message = on_message
        self.loop = loop

    async def handle_RCPT(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, rcpt_options: list[str]
    ) -> str:
        if not accepts(address, self.addresses):
            return f"550 5.1.1 <{address}>: no such mailbox here"
        envelope.rcpt_tos.append(address)
        return "250 2.1.5 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        content = envelope.original_content or envelope.content or b""
        raw = content if isinstance(content, bytes) else str(content).encode("utf-8", "surrogateescape")
        trace = b"".join(f"Delivered-To: {rcpt}\r\n".encode("utf-8") for rcpt in envelope.rcpt_tos)
        try:
            await self._deliver(trace + raw)
        except Exception:
            log.exception("inbound mail from %s not stored; told the client to retry", envelope.mail_from)
            return "451 4.3.0 Could not store the message now, please retry"
        return "250 2.0.0 Message accepted"

    async def _deliver(self, raw: bytes) -> None:
        running = asyncio.get_running_loop()
        if self.loop is None or self.loop is running:
            await self.on_message(raw)
            return
        # aiosmtpd's Controller runs its own loop in a thread; the pipeline lives on ours.
        future = asyncio.run_coroutine_threadsafe(_call(self.on_message, raw), self.loop)
        await asyncio.wrap_future(future)


async def _call(on_message: OnMessage, raw: bytes) -> None:
    await on_message(raw)


async def start_smtp_server(
    *,
    host: str,
    port: int,
    addresses: Iterable[str],
    on_message: OnMessage,
    hostname: str | None = None,
    data_size_limit: int = DATA_SIZE_LIMIT,
    **smtp_options: Any,
) -> asyncio.Server:
    """Listen on `host:port` in the running loop; close the returned server to stop."""
    handler = InboxSmtpHandler(addresses=addresses, on_message=on_message)
    loop = asyncio.get_running_loop()
    return await loop.create_server(
        lambda: SMTP(
            handler,
            hostname=hostname,
            data_size_limit=data_size_limit,
            enable_SMTPUTF8=True,
            **smtp_options,
        ),
        host=host,
        port=port,
        # Several workers (`inbox serve --workers N --smtp-port P`) each listen on the
        # same port; the kernel spreads connections between them.
        reuse_port=True,
    )
