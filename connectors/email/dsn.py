"""Delivery reports (bounces) for our own outbound mail, as `StatusUpdate`s.

`bounce_status(raw)` promises, for a message that is a bounce:

- one update per recipient block of an RFC 3464 report (message/delivery-status):
  `Action: failed` (or a 5.x.x Status without an Action) -> status "failed",
  `Action: delivered` -> "delivered"; `delayed` (4.x.x, the MTA still tries),
  `relayed` and `expanded` carry no outcome and are skipped;
- for bounces without a report (Gmail's and Exchange's plain-text ones), one "failed"
  update when the text names a permanent (5.x.x) failure;
- `provider_message_id` = the Message-ID of OUR original message, read from the
  report's message/rfc822 or text/rfc822-headers part, else from a `Message-ID:` line in
  the body; "" when the report does not quote it (match by `recipient` then);
- `recipient` = the Final-Recipient (or X-Failed-Recipients) address, case-folded;
  `error_code` = the Status ("5.1.1"); `error_text` = the Diagnostic-Code, unfolded.

Anything that is not a bounce gives []; nothing here raises.
"""

from __future__ import annotations

import email.policy
import re
from email.message import Message
from email.parser import BytesParser, HeaderParser

from inbox.types import FLAG_BOUNCE, StatusUpdate

from .headers import decode_8bit, message_ids
from .mime import CHANNEL, PROVIDER, parse_message

__all__ = ["bounce_status"]

_REPORTS = ("message/delivery-status", "message/global-delivery-status")
_ORIGINALS = ("message/rfc822", "message/global", "text/rfc822-headers")
_STATUS = re.compile(r"\b([245])\.(\d{1,3})\.(\d{1,3})\b")
_MSGID_LINE = re.compile(r"^\s*Message-ID:\s*(<[^<>\s]+>)", re.IGNORECASE | re.MULTILINE)
_EMAIL = re.compile(r"[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)+")
_ORIGINAL_MARKER = re.compile(
    r"^\s*(?:-+\s*)?(?:original message|original message headers|undelivered message|"
    r"this is a copy of the message)",
    re.IGNORECASE | re.MULTILINE,
)
_DIAGNOSTIC_TEXT = (
    re.compile(r"Remote Server returned '([^']+)'", re.IGNORECASE),
    re.compile(r"error that the other server returned was:\s*\n\s*(.+)", re.IGNORECASE),
)


def bounce_status(raw: bytes) -> list[StatusUpdate]:
    """The delivery updates a bounce carries (see the module docstring)."""
    try:
        inbound = parse_message(raw, our_addresses=())
    except Exception:  # not a mail at all: certainly not a bounce
        return []
    if FLAG_BOUNCE not in inbound.flags:
        return []
    msg = BytesParser(policy=email.policy.default).parsebytes(raw)
    original = _original_message_id(msg, inbound.meta.get("full_text", ""), inbound.thread.message_id)
    updates: list[StatusUpdate] = []
    reports = [part for part in msg.walk() if part.get_content_type() in _REPORTS]
    for report in reports:
        for fields in _recipient_blocks(report):
            update = _from_fields(fields, original)
            if update is not None:
                updates.append(update)
    if not reports:
        update = _from_text(msg, str(inbound.meta.get("full_text", "")), original, inbound.sender)
        if update is not None:
            updates.append(update)
    return updates


def _from_fields(fields: dict[str, str], original: str) -> StatusUpdate | None:
    action = fields.get("action", "").strip().lower()
    status_match = _STATUS.search(fields.get("status", ""))
    code = status_match.group(0) if status_match else None
    if action == "failed" or (not action and code and code.startswith("5")):
        state = "failed"
    elif action == "delivered":
        state = "delivered"
    else:
        return None  # delayed / relayed / expanded: the outcome is still open
    recipient = _address(fields.get("final-recipient") or fields.get("original-recipient"))
    return StatusUpdate(
        channel=CHANNEL,
        provider=PROVIDER,
        provider_message_id=original,
        status=state,
        error_code=code,
        error_text=fields.get("diagnostic-code") or None,
        recipient=recipient,
    )


def _from_text(msg: Message, text: str, original: str, sender: str) -> StatusUpdate | None:
    report = _ORIGINAL_MARKER.split(text, maxsplit=1)[0]
    status = _STATUS.search(report)
    if status is None or status.group(1) != "5":
        return None  # no permanent failure named: a warning, or we cannot tell
    failed = str(msg.get("x-failed-recipients") or "")
    candidates = _EMAIL.findall(failed) or [a for a in _EMAIL.findall(report) if a.casefold() != sender]
    diagnostic = None
    for pattern in _DIAGNOSTIC_TEXT:
        found = pattern.search(report)
        if found:
            diagnostic = " ".join(found.group(1).split())
            break
    if diagnostic is None:
        line = next(line for line in report.splitlines() if status.group(0) in line)
        diagnostic = line.strip()
    return StatusUpdate(
        channel=CHANNEL,
        provider=PROVIDER,
        provider_message_id=original,
        status="failed",
        error_code=status.group(0),
        error_text=diagnostic,
        recipient=candidates[0].casefold() if candidates else None,
    )


def _recipient_blocks(report: Message) -> list[dict[str, str]]:
    """The per-recipient field blocks of a delivery-status part, keys lower-cased."""
    payload = report.get_payload()
    blocks: list[dict[str, str]] = []
    if isinstance(payload, list):
        for block in payload:
            if not isinstance(block, Message):
                continue
            blocks.append({k.lower(): _unfold(str(v)) for k, v in block.raw_items()})
    else:
        text = payload if isinstance(payload, str) else ""
        data = report.get_payload(decode=True)
        if isinstance(data, bytes):
            text = data.decode("utf-8", "replace")
        for chunk in re.split(r"\r?\n\s*\r?\n", text):
            parsed = HeaderParser().parsestr(chunk.strip() + "\n")
            blocks.append({k.lower(): _unfold(str(v)) for k, v in parsed.items()})
    return [b for b in blocks if "final-recipient" in b or "original-recipient" in b or "action" in b]


def _original_message_id(msg: Message, text: object, own: str | None) -> str:
    for part in msg.walk():
        kind = part.get_content_type()
        if kind not in _ORIGINALS:
            continue
        payload = part.get_payload()
        if isinstance(payload, list) and payload and isinstance(payload[0], Message):
            found = message_ids(str(payload[0].get("message-id", "")))
        else:
            data = part.get_payload(decode=True)
            headers = HeaderParser().parsestr(
                data.decode("utf-8", "replace") if isinstance(data, bytes) else str(payload)
            )
            found = message_ids(str(headers.get("message-id", "")))
        if found:
            return found[0]
    for candidate in _MSGID_LINE.findall(str(text)):
        if candidate != own:
            return str(candidate)
    return ""


def _address(value: str | None) -> str | None:
    if not value:
        return None
    address = value.split(";", 1)[-1].strip().strip("<>").strip()
    return decode_8bit(address).casefold() or None


def _unfold(value: str) -> str:
    # RFC 5322 unfolding removes the line break and keeps the whitespace after it.
    return re.sub(r"\r?\n", "", value).strip()
