"""The email channel: raw MIME in (webhook, SMTP listener, IMAP poller), SMTP out.

Modules: `mime` (raw bytes -> Inbound), `body` (texts, HTML, attachments), `headers`
(charsets, addresses, ids), `quotes` (new part vs quoted history), `html` (sanitising),
`loops` (auto-reply / bulk / bounce flags), `dsn` (bounces -> StatusUpdate), `compose`
(Outbound -> EmailMessage), `tokens` (reply tokens), `connector` (EmailConnector),
`smtp_listener`, `imap_poller`.
"""

from __future__ import annotations

from typing import Any

from .compose import compose
from .connector import BOT_KEY_PREFIX, EmailConnector, SmtpSettings
from .dsn import bounce_status
from .mime import parse_message
from .quotes import ReplyParts, split_reply

__all__ = [
    "BOT_KEY_PREFIX",
    "EmailConnector",
    "ReplyParts",
    "SmtpSettings",
    "bounce_status",
    "build",
    "compose",
    "parse_message",
    "split_reply",
]


def build(settings: Any) -> EmailConnector | None:
    """The connector from inbox `Settings` (read by attribute: connectors never import the
    core's settings module), or None when neither SMTP nor the webhook secret is set."""
    host = getattr(settings, "smtp_host", None)
    secret = getattr(settings, "email_secret", None)
    if not host and not secret:
        return None
    smtp = None
    if host:
        smtp = SmtpSettings(
            host=host,
            port=int(getattr(settings, "smtp_port", 587)),
            username=getattr(settings, "smtp_username", None),
            password=getattr(settings, "smtp_password", None),
            starttls=bool(getattr(settings, "smtp_starttls", True)),
            tls=bool(getattr(settings, "smtp_tls", False)),
        )
    addresses = tuple(getattr(settings, "email_addresses", ()) or ())
    return EmailConnector(
        secret=secret,
        addresses=addresses,
        smtp=smtp,
        default_from=getattr(settings, "smtp_from", None) or (addresses[0] if addresses else ""),
        token_secret=getattr(settings, "secret_key", None) or secret,
    )
