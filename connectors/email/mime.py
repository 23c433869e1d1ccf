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
from dataclasses import dataclass, field
from email import errors as mail_errors
from email.message import EmailMessage, Message
from email.parser import BytesParser
from typing import Any

from inbox.errors import UnsupportedPayload
from inbox.types import FLAG_BROKEN, Attachment, Inbound, ThreadHints

from .headers import (
    addresses,
    charset_codec,
    decode_8bit,
    header,
    message_charset,
    message_ids,
    normalise_message_id,
)
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
_ATTACHED_MESSAGES = ("message/rfc822", "message/global", "text/rfc822-headers")
_REPORT_FIELDS = (
    "message/delivery-status",
    "message/global-delivery-status",
    "message/disposition-notification",
    "message/global-disposition-notification",
)
_HEADER_NAME = re.compile(rb"^[!-9;-~]+:")


@dataclass(slots=True)
class _Body:
    plain: list[str] = field(default_factory=list)
    html: list[str] = field(default_factory=list)
    attachments: list[Attachment] = field(default_factory=list)
    broken: bool = False


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

    body = _Body()
    _walk(msg, body)
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


def _walk(part: Message, body: _Body) -> None:
    kind = part.get_content_type()
    if kind.startswith("multipart/"):
        payload = part.get_payload()
        if not isinstance(payload, list):  # a multipart with no usable boundary
            body.broken = True
            _leaf(part, body, as_text=True)
            return
        children = [child for child in payload if isinstance(child, Message)]
        if kind == "multipart/alternative":
            _alternative(children, body)
            return
        for child in children:
            _walk(child, body)
        return
    if kind in _REPORT_FIELDS:
        return  # read by dsn.bounce_status; nothing a person wrote
    if kind in _ATTACHED_MESSAGES:
        body.attachments.append(_attached_message(part, kind))
        return
    _leaf(part, body)


def _alternative(children: list[Message], body: _Body) -> None:
    """One body from the alternatives: the first plain text, the richest HTML."""
    subs = []
    for child in children:
        sub = _Body()
        _walk(child, sub)
        subs.append(sub)
    plain = next((sub.plain for sub in subs if sub.plain), [])
    html = next((sub.html for sub in reversed(subs) if sub.html), [])
    body.plain.extend(plain)
    body.html.extend(html)
    for sub in subs:
        body.attachments.extend(sub.attachments)
        body.broken = body.broken or sub.broken


def _leaf(part: Message, body: _Body, *, as_text: bool = False) -> None:
    kind = "text/plain" if as_text else part.get_content_type()
    disposition = part.get_content_disposition()
    filename = _filename(part)
    if kind in ("text/plain", "text/html") and disposition != "attachment" and not filename:
        text, clean = _decode_text(part)
        body.broken = body.broken or not clean
        if kind == "text/plain":
            if str(part.get_param("format", "")).lower() == "flowed":
                text = _unflow(text, delsp=str(part.get_param("delsp", "")).lower() == "yes")
            body.plain.append(text)
        else:
            body.html.append(text)
        return
    data = _payload(part)
    content_id = part.get("content-id")
    cid = normalise_message_id(str(content_id)) if content_id else None
    body.attachments.append(
        Attachment(
            content_type=kind,
            filename=filename,
            data=data,
            size=len(data),
            inline=disposition == "inline" or (cid is not None and disposition != "attachment"),
            content_id=cid.strip("<>") if cid else None,
        )
    )


def _attached_message(part: Message, kind: str) -> Attachment:
    payload = part.get_payload()
    if isinstance(payload, list) and payload and isinstance(payload[0], Message):
        try:
            data = payload[0].as_bytes(policy=email.policy.compat32)
        except Exception:  # an attached message too broken to re-serialise
            data = str(payload[0]).encode("utf-8", "surrogateescape")
    else:
        data = _payload(part)
    name = _filename(part) or ("message.eml" if kind != "text/rfc822-headers" else "headers.txt")
    return Attachment(content_type=kind, filename=name, data=data, size=len(data))


def _filename(part: Message) -> str | None:
    try:
        name = part.get_filename()
    except Exception:  # malformed RFC 2231 parameters
        return None
    if not name:
        return None
    return decode_8bit(str(name), charset=part.get_content_charset()).strip() or None


def _payload(part: Message) -> bytes:
    try:
        data = part.get_payload(decode=True)
    except Exception:
        data = None
    if isinstance(data, bytes):
        return data
    raw = part.get_payload()
    return raw.encode("utf-8", "surrogateescape") if isinstance(raw, str) else b""


def _decode_text(part: Message) -> tuple[str, bool]:
    """The part's text and whether it decoded cleanly in its declared (or sniffed) charset."""
    data = _payload(part)
    declared = part.get_content_charset()
    if declared in ("us-ascii", "ascii"):
        declared = None  # 7-bit by definition: 8-bit bytes under it were never ASCII
    codec = charset_codec(declared)
    if codec is not None:
        try:
            return _newlines(data.decode(codec)), True
        except UnicodeDecodeError:
            pass
    # No charset, an unknown one, or a wrong one: UTF-8 if it is, else windows-1252,
    # which decodes every byte (the undeclared 8-bit default of the web and of mail).
    try:
        return _newlines(data.decode("utf-8")), codec is None or declared is None
    except UnicodeDecodeError:
        return _newlines(data.decode(codec or "cp1252", "replace")), False


def _newlines(text: str) -> str:
    return text.replace("\r\n", "\n").replace("\r", "\n")


def _unflow(text: str, *, delsp: bool) -> str:
    """Join RFC 3676 format=flowed soft line breaks (quote depth kept per line)."""
    out: list[str] = []
    pending: str | None = None
    pending_depth = 0
    for line in text.split("\n"):
        depth = len(line) - len(line.lstrip(">"))
        content = line[depth:]
        if content.startswith(" "):
            content = content[1:]  # space-stuffing (RFC 3676 4.4)
        soft = content.endswith(" ") and content != "-- "
        if soft and delsp:
            content = content[:-1]
        if pending is not None and depth == pending_depth:
            pending += content
        else:
            if pending is not None:
                out.append(_quoted(pending, pending_depth))
            pending, pending_depth = content, depth
        if not soft:
            out.append(_quoted(pending, pending_depth))
            pending = None
    if pending is not None:
        out.append(_quoted(pending, pending_depth))
    return "\n".join(out)


def _quoted(content: str, depth: int) -> str:
    return (">" * depth + " " + content) if depth else content
