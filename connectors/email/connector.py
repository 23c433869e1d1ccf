"""`EmailConnector`: the email channel behind inbox's `Connector` protocol.

Inbound arrives three ways, all as raw RFC 5322 bytes handed to the same pure parser:
the `POST /webhooks/email` webhook (authenticated by INBOX_EMAIL_SECRET, see `verify`),
the SMTP listener (`smtp_listener.py`) and the IMAP poller (`imap_poller.py`); the
latter two call `parse_raw` / `status_raw`. Outbound leaves through SMTP with aiosmtplib.

Bot answers: `Outbound` has no "automatic" field, so `send` treats an outbound whose
`idempotency_key` starts with "bot:" as one and marks it `Auto-Submitted: auto-replied`
(RFC 3834), which keeps the customer's own auto-responders quiet.
"""

from __future__ import annotations

import asyncio
import hmac
import logging
from collections.abc import Iterable
from dataclasses import dataclass, replace
from email.utils import parseaddr

import aiosmtplib

from inbox.errors import SendFailed, SignatureInvalid
from inbox.types import FLAG_BOUNCE, Inbound, Outbound, SendResult, StatusUpdate, WebhookRequest

from .compose import compose
from .dsn import bounce_status
from .headers import normalise_message_id
from .mime import parse_message
from .tokens import conversation_from_token, reply_token_for

__all__ = ["BOT_KEY_PREFIX", "EmailConnector", "SmtpSettings"]

log = logging.getLogger(__name__)

BOT_KEY_PREFIX = "bot:"
SECRET_HEADER = "x-inbox-email-secret"
# SMTP replies that mean "this server will not take mail from us as configured", not
# "this message is bad": retrying after the operator fixes the credentials can succeed.
_AUTH_CODES = frozenset({530, 534, 535, 538})


@dataclass(frozen=True, slots=True)
class SmtpSettings:
    """Where and how outbound mail is submitted (INBOX_SMTP_*).

    `tls`: implicit TLS from the first byte (port 465). `starttls`: require an upgrade
    with STARTTLS (port 587); False sends in the clear (a local relay, tests).
    """

    host: str
    port: int = 587
    username: str | None = None
    password: str | None = None
    starttls: bool = True
    tls: bool = False
    timeout: float = 30.0
    validate_certs: bool = True


class EmailConnector:
    """Email in (raw MIME) and out (SMTP). See the module docstring."""

    provider = "email"
    channels: tuple[str, ...] = ("email",)

    def __init__(
        self,
        *,
        secret: str | None,
        addresses: Iterable[str],
        smtp: SmtpSettings | None,
        default_from: str,
        token_secret: str | None = None,
    ) -> None:
        """`secret` authenticates the webhook; `token_secret` (default: `secret`) signs
        reply tokens. With neither, replies carry a plain Reply-To and no token."""
        self.secret = secret or None
        self.addresses = tuple(a.strip().casefold() for a in addresses if a.strip())
        self.smtp = smtp
        self.default_from = default_from
        self._token_secret = token_secret or secret or None

    # -- inbound ---------------------------------------------------------------------

    def verify(self, request: WebhookRequest) -> None:
        """Accept `Authorization: Bearer <secret>` or `X-Inbox-Email-Secret: <secret>`."""
        if not self.secret:
            raise SignatureInvalid(
                "email webhook refused: INBOX_EMAIL_SECRET is unset, so no request can be "
                "authenticated"
            )
        offered: list[str] = []
        auth = request.header("authorization") or ""
        scheme, _, value = auth.strip().partition(" ")
        if scheme.lower() == "bearer" and value.strip():
            offered.append(value.strip())
        direct = request.header(SECRET_HEADER)
        if direct:
            offered.append(direct.strip())
        expected = self.secret.encode("utf-8")
        # Compare every offered value (no early exit) in constant time per value.
        matches = [hmac.compare_digest(v.encode("utf-8"), expected) for v in offered]
        if not any(matches):
            what = "a wrong secret" if offered else "no secret"
            raise SignatureInvalid(
                f"email webhook refused: expected Authorization: Bearer <INBOX_EMAIL_SECRET> "
                f"or {SECRET_HEADER}, got {what}"
            )

    def parse(self, request: WebhookRequest) -> list[Inbound]:
        """The one message in the request body (raw RFC 5322)."""
        return self.parse_raw(request.body)

    def parse_status(self, request: WebhookRequest) -> list[StatusUpdate]:
        """Delivery updates when the body is a bounce for our mail, else []."""
        return self.status_raw(request.body)

    def parse_raw(self, raw: bytes) -> list[Inbound]:
        """`parse` for bytes from the SMTP listener or the IMAP poller.

        A reply token in the recipient is checked here: `thread.reply_token` carries the
        conversation id it proves (as a string), or None for a forged or unknown token.
        """
        inbound = parse_message(raw, our_addresses=self.addresses)
        if FLAG_BOUNCE in inbound.flags and not (inbound.thread.in_reply_to or inbound.thread.references):
            # A bounce names our undelivered mail only inside its report: thread it as a
            # reply to that mail, so it lands (quietly) in the conversation it concerns
            # instead of opening one with MAILER-DAEMON.
            quoted = next((u.provider_message_id for u in bounce_status(raw) if u.provider_message_id), None)
            if quoted:
                inbound.thread = replace(inbound.thread, in_reply_to=quoted)
        if inbound.thread.reply_token:
            cid = self.conversation_from_token(inbound.thread.reply_token)
            inbound.thread = replace(inbound.thread, reply_token=str(cid) if cid else None)
        return [inbound]

    def status_raw(self, raw: bytes) -> list[StatusUpdate]:
        """`parse_status` for bytes from the SMTP listener or the IMAP poller."""
        return bounce_status(raw)

    # -- reply tokens ----------------------------------------------------------------

    def reply_token_for(self, conversation_id: int) -> str | None:
        """The unguessable token naming `conversation_id`, or None without a secret."""
        if not self._token_secret:
            return None
        return reply_token_for(conversation_id, secret=self._token_secret)

    def conversation_from_token(self, token: str | None) -> int | None:
        """The conversation a reply token names, or None if forged, malformed or absent."""
        if not self._token_secret:
            return None
        return conversation_from_token(token, secret=self._token_secret)

    # -- outbound --------------------------------------------------------------------

    async def send(self, outbound: Outbound) -> SendResult:
        """Submit `outbound` over SMTP; `SendFailed.retryable` says whether to try again."""
        if self.smtp is None:
            raise SendFailed("email not configured: INBOX_SMTP_HOST is unset", retryable=True)
        from_header = self._from_header(outbound.from_address)
        _, from_addr = parseaddr(from_header)
        local, _, domain = from_addr.rpartition("@")
        token = self.reply_token_for(outbound.conversation_id)
        reply_to = f"{local.split('+', 1)[0]}+{token}@{domain}" if token else None
        try:
            msg = compose(
                outbound,
                from_address=from_header,
                reply_to=reply_to,
                message_id_domain=domain,
                auto=outbound.idempotency_key.startswith(BOT_KEY_PREFIX),
            )
        except ValueError as exc:
            raise SendFailed(str(exc), retryable=False, error_code="bad_address") from exc
        settings = self.smtp
        try:
            await aiosmtplib.send(
                msg,
                sender=from_addr,
                recipients=[str(outbound.to).strip()],
                hostname=settings.host,
                port=settings.port,
                username=settings.username,
                password=settings.password,
                use_tls=settings.tls,
                start_tls=settings.starttls and not settings.tls,
                validate_certs=settings.validate_certs,
                timeout=settings.timeout,
            )
        except aiosmtplib.SMTPRecipientsRefused as exc:
            refused = exc.recipients[0] if exc.recipients else None
            code = refused.code if refused else 550
            raise _failed(code, refused.message if refused else str(exc), "recipient refused") from exc
        except aiosmtplib.SMTPResponseException as exc:
            raise _failed(exc.code, exc.message, "SMTP server refused") from exc
        except (aiosmtplib.SMTPException, OSError, asyncio.TimeoutError) as exc:
            raise SendFailed(
                f"could not reach SMTP server {settings.host}:{settings.port}: {exc}",
                retryable=True,
            ) from exc
        message_id = normalise_message_id(str(msg["Message-ID"])) or str(msg["Message-ID"])
        return SendResult(provider_message_id=message_id, status="sent")

    def _from_header(self, from_address: str | None) -> str:
        """Our address the customer wrote to, named like `default_from` when it is that one."""
        default_name, default_addr = parseaddr(self.default_from)
        if not from_address:
            return self.default_from
        _, addr = parseaddr(from_address)
        if addr.casefold() == default_addr.casefold() and default_name:
            return self.default_from
        return from_address


def _failed(code: int, message: str, what: str) -> SendFailed:
    # 4xx: try again later (RFC 5321 4.2.1); auth failures are our configuration;
    # other 5xx: this message will never be accepted as it is.
    retryable = 400 <= code < 500 or code in _AUTH_CODES or code < 400
    return SendFailed(
        f"{what}: {code} {message}".strip(), retryable=retryable, error_code=str(code)
    )
