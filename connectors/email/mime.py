"""Raw RFC 5322 bytes in, one normalised `Inbound` out.

`parse_message(raw, our_addresses=...)` is pure and shared by the webhook, the SMTP
listener and the IMAP poller. Its promises:

- it raises `UnsupportedPayload` only for input that is not a mail at all (empty, no
  header section, no or an empty From); any message with a From comes back, with whatever could be
  read, flagged `FLAG_BROKEN` when its MIME structure or an encoding was damaged;
- every text is `str`: encoded-words, raw 8-bit headers and the charsets real clients
  mislabel (ks_c_5601-1987, Shift_JIS, ISO-2022-JP, windows-1252, ...) are decoded;
- `text` is the new part of the message (quoted history and signature folded away; the
  whole text when nothing new is left), `html` the sanitised HTML alternative;
- `meta` (JSON-safe) holds `subject`, `full_text`, `quoted_text`, `signature`, `date`
  (ISO 8601 from the Date header, when it parses), `to` and `cc` (address lists) and
  `from_header` (the decoded From line);
- `raw` keeps the decoded header fields, the size and the SHA-256 of the source for
  audit (not the source itself, which may be megabytes of attachments).
"""

from __future__ import annotations

import email.policy
import email.utils
import hashlib
import re
from collections.abc import Iterable
from email import errors as mail_errors
from email.message import EmailMessage, Message
from email.parser import BytesParser
from typing import Any

from inbox.errors import UnsupportedPayload
from inbox.types import FLAG_BROKEN, Inbound, ThreadHints

from .body import read_body
from .headers import addresses, header, message_charset, message_ids, normalise_message_id
from .html import html_to_text, sanitise
from .loops import machine_flags
from .quotes import split_reply

__all__ = ["match_recipient", "parse_message", "provider_message_id"]

CHANNEL = "email"
PROVIDER = "email"
# Fields that say which of our mailboxes a message reached; the envelope ones
# (Delivered-To, X-Original-To) are the only trace of a Bcc.
_RECIPIENT_FIELDS = ("to", "cc", "delivered-to", "x-original-to", "envelope-to", "x-envelope-to")
# Parser defects that mean the structure (not merely a header) was damaged.
_STRUCTURAL_DEFECTS = (
    mail_errors.StartBoundaryNotFoundDefect,
    mail_errors.CloseBoundaryNotFoundDefect,
    mail_errors.MultipartInvariantViolationDefect,
    mail_errors.NoBoundaryInMultipartDefect,
    mail_errors.MissingHeaderBodySeparatorDefect,
    mail_errors.FirstHeaderLineIsContinuationDefect,
    mail_errors.MisplacedEnvelopeHeaderDefect,
    mail_errors.InvalidBase64PaddingDefect,
    mail_errors.InvalidBase64CharactersDefect,
    mail_errors.InvalidBase64LengthDefect,
    mail_errors.InvalidMultipartContentTransferEncodingDefect,
)
_HEADER_NAME = re.compile(rb"^[!-9;-~]+:")


def provider_message_id(msg_id: str | None, raw: bytes) -> str:
    """The Message-ID as `<...>`, or `sha256:<hex>` of the source when there is none."""
    return msg_id or "sha256:" + hashlib.sha256(raw).hexdigest()


def parse_message(raw: bytes, *, our_addresses: Iterable[str] = ()) -> Inbound:
    """Normalise one raw message (see the module docstring for what is promised)."""
    if not isinstance(raw, (bytes, bytearray)) or not raw.strip():
        raise UnsupportedPayload("expected a raw RFC 5322 message, got an empty body")
    raw = bytes(raw)
    source = _strip_mbox_line(raw)
    if not _HEADER_NAME.match(source.lstrip(b"\r\n")):
        raise UnsupportedPayload("expected a raw RFC 5322 message, got no header section")
    msg = BytesParser(policy=email.policy.default).parsebytes(source)
    assert isinstance(msg, EmailMessage)
    charset = message_charset(msg)
    if header(msg, "from", charset=charset) is None:
        raise UnsupportedPayload("expected a mail with a From header, found none")

    sender, display_name, from_line = _sender(msg, charset)
    if not sender:
        raise UnsupportedPayload(f"expected a From header naming a sender, got {from_line!r}")
    subject = header(msg, "subject", charset=charset) or ""
    msg_id = normalise_message_id(header(msg, "message-id"))
    in_reply_to = next(iter(message_ids(header(msg, "in-reply-to"))), None)
    references = tuple(message_ids(" ".join(_all(msg, "references"))))
    recipient, token = match_recipient(
        [addr for _, addr in addresses(msg, _RECIPIENT_FIELDS, charset=charset)], our_addresses
    )

    body = read_body(msg)
    full_text = "\n\n".join(t for t in body.plain if t.strip())
    if not full_text.strip() and body.html:
        full_text = html_to_text("\n".join(body.html))
    parts = split_reply(full_text)
    text = parts.new or parts.visible or full_text.strip()

    headers = [(name, header(msg, name, charset=charset) or "") for name in _names(msg)]
    lowered: dict[str, str] = {}
    for name, value in headers:
        lowered.setdefault(name.lower(), value)
    flags = set(
        machine_flags(
            msg,
            headers=lowered,
            sender=sender,
            subject=subject,
            is_reply=bool(in_reply_to or references),
        )
    )
    if body.broken or _damaged(msg):
        flags.add(FLAG_BROKEN)

    meta: dict[str, Any] = {
        "subject": subject,
        "full_text": full_text,
        "quoted_text": parts.quoted,
        "signature": parts.signature,
        "from_header": from_line,
        "to": [addr for _, addr in addresses(msg, ("to",), charset=charset)],
        "cc": [addr for _, addr in addresses(msg, ("cc",), charset=charset)],
    }
    date = _date(header(msg, "date"))
    if date:
        meta["date"] = date
    return Inbound(
        channel=CHANNEL,
        provider=PROVIDER,
        provider_message_id=provider_message_id(msg_id, raw),
        sender=sender,
        sender_kind="email",
        text=text,
        display_name=display_name,
        recipient=recipient,
        html=sanitise("\n".join(body.html)) if body.html else None,
        attachments=body.attachments,
        thread=ThreadHints(
            message_id=msg_id,
            in_reply_to=in_reply_to,
            references=references,
            subject=subject or None,
            reply_token=token,
        ),
        flags=frozenset(flags),
        meta=meta,
        raw={
            "headers": [[name, value] for name, value in headers],
            "size": len(raw),
            "sha256": hashlib.sha256(raw).hexdigest(),
        },
    )


def match_recipient(
    candidates: Iterable[str], our_addresses: Iterable[str]
) -> tuple[str | None, str | None]:
    """Which of `our_addresses` the candidates name, and the reply token if one does.

    `support+TOKEN@shop.example` matches `support@shop.example` and yields `TOKEN`.
    Comparison is case-insensitive; the returned address is case-folded.
    """
    ours = {addr.strip().casefold() for addr in our_addresses if addr.strip()}
    recipient: str | None = None
    token: str | None = None
    for candidate in candidates:
        local, _, domain = candidate.strip().casefold().rpartition("@")
        if not local:
            continue
        base, plus, tag = local.partition("+")
        if f"{local}@{domain}" in ours:
            recipient = recipient or f"{local}@{domain}"
        elif plus and f"{base}@{domain}" in ours:
            recipient = recipient or f"{base}@{domain}"
            token = token or (tag or None)
    return recipient, token


def _strip_mbox_line(raw: bytes) -> bytes:
    # Some pipes hand over mbox entries; "From sender date" is not a header.
    if raw.startswith(b"From ") and b":" not in raw.split(b"\n", 1)[0].split(b" ", 2)[1]:
        return raw.split(b"\n", 1)[1] if b"\n" in raw else b""
    return raw


def _names(msg: Message) -> list[str]:
    seen: list[str] = []
    for name, _ in msg.raw_items():
        if name not in seen:
            seen.append(name)
    return seen


def _all(msg: Message, name: str) -> list[str]:
    return [str(v) for k, v in msg.raw_items() if k.lower() == name]


def _sender(msg: Message, charset: str | None) -> tuple[str, str | None, str]:
    from_line = header(msg, "from", charset=charset) or ""
    found = addresses(msg, ("from",), charset=charset)
    if found:
        name, addr = found[0]
        return addr.strip().casefold(), (name.strip() or None), from_line
    # "From: MAILER-DAEMON" and other address-less lines: keep what is there.
    bare = from_line.strip().strip("<>").split()
    return (bare[0].casefold() if bare else ""), None, from_line


def _date(value: str | None) -> str | None:
    if not value:
        return None
    try:
        return email.utils.parsedate_to_datetime(value).isoformat()
    except (TypeError, ValueError, IndexError):
        return None


def _damaged(msg: Message) -> bool:
    return any(
        isinstance(defect, _STRUCTURAL_DEFECTS) for part in msg.walk() for defect in part.defects
    )
