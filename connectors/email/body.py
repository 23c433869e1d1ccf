"""The body of a parsed message: its texts, its HTML and its attachments.

`read_body(msg)` promises every inline text/plain part (decoded, format=flowed joined)
and text/html part, one alternative per multipart/alternative (the first plain text,
the richest HTML), every other leaf as an `Attachment` with its bytes, attached
messages (message/rfc822, text/rfc822-headers) as attachments without descending into
them, DSN/MDN field parts skipped, and `broken` set when a part could not be decoded
cleanly or a multipart had no usable boundary. It never raises for a parsed message.
"""

from __future__ import annotations

import email.policy
from dataclasses import dataclass, field
from email.message import Message

from inbox.types import Attachment

from .headers import charset_codec, decode_8bit, normalise_message_id

__all__ = ["Body", "read_body"]

_ATTACHED_MESSAGES = ("message/rfc822", "message/global", "text/rfc822-headers")
_REPORT_FIELDS = (
    "message/delivery-status",
    "message/global-delivery-status",
    "message/disposition-notification",
    "message/global-disposition-notification",
)


@dataclass(slots=True)
class Body:
    """What `read_body` found."""

    plain: list[str] = field(default_factory=list)
    html: list[str] = field(default_factory=list)
    attachments: list[Attachment] = field(default_factory=list)
    broken: bool = False


def read_body(msg: Message) -> Body:
    """The texts, HTML and attachments of `msg` (see the module docstring)."""
    body = Body()
    _walk(msg, body)
    return body


def _walk(part: Message, body: Body) -> None:
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


def _alternative(children: list[Message], body: Body) -> None:
    """One body from the alternatives: the first plain text, the richest HTML."""
    subs = []
    for child in children:
        sub = Body()
        _walk(child, sub)
        subs.append(sub)
    plain = next((sub.plain for sub in subs if sub.plain), [])
    html = next((sub.html for sub in reversed(subs) if sub.html), [])
    body.plain.extend(plain)
    body.html.extend(html)
    for sub in subs:
        body.attachments.extend(sub.attachments)
        body.broken = body.broken or sub.broken


def _leaf(part: Message, body: Body, *, as_text: bool = False) -> None:
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
