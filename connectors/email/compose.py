"""Build the outbound email for an `Outbound` reply: pure, no I/O.

`compose(outbound, from_address=..., reply_to=..., message_id_domain=...)` promises an
`EmailMessage` that:

- has a text/plain part and a text/html alternative (`outbound.html`, or HTML made from
  the text: escaped, blank lines -> paragraphs, line breaks -> <br>), plus every
  attachment that carries bytes (URL-only attachments are listed as links in the text);
- threads in the customer's client: `In-Reply-To` is the customer's last Message-ID
  (`outbound.thread.message_id`), `References` their References plus that id, bounded
  to the first and the last 19 ids (RFC 5322 3.6.4 allows trimming; the first keeps the
  thread root);
- has `Subject: Re: <thread subject>` with any existing reply prefixes ("Re:", "AW:",
  "RE[2]:") collapsed into one "Re:";
- has a fresh random `Message-ID` under `message_id_domain`;
- carries `Auto-Submitted: auto-replied` and `X-Auto-Response-Suppress: All` when `auto`
  (a bot answer), so well-behaved robots on the other side stay quiet (RFC 3834);
- can carry no header injection: CR, LF and other control characters in the subject or
  names become spaces, and an address that is not one plain address raises ValueError.
"""

from __future__ import annotations

import html as html_lib
import re
from email.headerregistry import Address
from email.message import EmailMessage
from email.utils import format_datetime, formataddr, make_msgid, parseaddr

from inbox.types import Outbound, utcnow

__all__ = ["MAX_REFERENCES", "compose", "reply_subject", "text_to_html"]

MAX_REFERENCES = 20
_PREFIX = re.compile(
    r"^\s*(?:(?:re|aw|sv|vs|antw|odp|ynt|r|rif|res|απ|ответ|回复|答复|返信)\s*(?:\[\d+\]|\(\d+\))?\s*[:：]\s*)+",
    re.IGNORECASE,
)
_CONTROL = re.compile(r"[\x00-\x1f\x7f\u2028\u2029]+")
_ADDR = re.compile(r"^[^\s@<>,;:\"()\[\]\\]+@[^\s@<>,;:\"()\[\]\\]+$")


def reply_subject(subject: str | None) -> str:
    """`Re: <subject>` with prior reply prefixes folded into one."""
    base = _PREFIX.sub("", _clean(subject or "")).strip()
    return f"Re: {base}" if base else "Re: your message"


def text_to_html(text: str) -> str:
    """Escaped HTML for plain `text`: paragraphs on blank lines, <br> on line breaks."""
    paragraphs = re.split(r"\n\s*\n", text.replace("\r\n", "\n").strip())
    body = "\n".join(
        "<p>" + "<br>\n".join(html_lib.escape(line) for line in para.split("\n")) + "</p>"
        for para in paragraphs
        if para.strip()
    )
    return f'<!DOCTYPE html>\n<html><body>\n{body}\n</body></html>\n'


def compose(
    outbound: Outbound,
    *,
    from_address: str,
    reply_to: str | None,
    message_id_domain: str,
    auto: bool = False,
) -> EmailMessage:
    """The message to send for `outbound` (see the module docstring for the promises)."""
    from_name, from_addr = parseaddr(_clean(from_address))
    to_addr = _plain_address(outbound.to, what="recipient")
    _plain_address(from_addr, what="sender")
    msg = EmailMessage()
    msg["From"] = _address(from_name, from_addr)
    msg["To"] = _address(outbound.display_name or "", to_addr)
    if reply_to:
        msg["Reply-To"] = _plain_address(reply_to, what="Reply-To")
    msg["Subject"] = reply_subject(outbound.thread.subject)
    msg["Date"] = format_datetime(utcnow())
    msg["Message-ID"] = _message_id(message_id_domain)
    parent = outbound.thread.message_id or outbound.thread.in_reply_to
    if parent:
        msg["In-Reply-To"] = _clean(parent)
        msg["References"] = " ".join(_references(outbound.thread.references, parent))
    if auto:
        msg["Auto-Submitted"] = "auto-replied"
        msg["X-Auto-Response-Suppress"] = "All"
    msg["MIME-Version"] = "1.0"

    text = outbound.text
    links = [a for a in outbound.attachments if a.data is None and a.url]
    if links:
        listed = "\n".join(f"{a.filename or 'attachment'}: {a.url}" for a in links)
        text = f"{text.rstrip()}\n\n{listed}"
    msg.set_content(text if text.endswith("\n") else text + "\n", subtype="plain", charset="utf-8")
    msg.add_alternative(outbound.html or text_to_html(text), subtype="html", charset="utf-8")
    for attachment in outbound.attachments:
        if attachment.data is None:
            continue
        maintype, _, subtype = (attachment.content_type or "application/octet-stream").partition("/")
        msg.add_attachment(
            attachment.data,
            maintype=maintype or "application",
            subtype=subtype or "octet-stream",
            filename=_clean(attachment.filename or "attachment"),
            disposition="inline" if attachment.inline else "attachment",
            cid=f"<{_clean(attachment.content_id)}>" if attachment.content_id else None,
        )
    return msg


def _clean(value: str) -> str:
    return _CONTROL.sub(" ", value).strip()


def _plain_address(value: str, *, what: str) -> str:
    address = _clean(value)
    if not _ADDR.match(address):
        raise ValueError(f"expected one plain email address as {what}, got {value!r}")
    return address


def _address(name: str, addr: str) -> Address | str:
    name = _clean(name)
    local, _, domain = addr.rpartition("@")
    try:
        return Address(display_name=name, username=local, domain=domain)
    except (ValueError, IndexError):
        return formataddr((name, addr))


def _message_id(domain: str) -> str:
    # Random, never derived from our row ids: after a database reset the same ids come
    # back, and receivers (Gmail) silently drop a mail whose Message-ID they have seen.
    return make_msgid(idstring="inbox", domain=_clean(domain).strip("<>@") or "localhost")


def _references(references: tuple[str, ...], parent: str) -> list[str]:
    ids: list[str] = []
    for ref in (*references, parent):
        ref = _clean(ref)
        if ref and ref not in ids:
            ids.append(ref)
    if len(ids) > MAX_REFERENCES:
        ids = [ids[0], *ids[-(MAX_REFERENCES - 1):]]
    return ids
