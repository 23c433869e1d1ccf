"""Recognise mail written by machines, so two robots never answer each other forever.

`machine_flags(msg, ...)` promises a subset of {FLAG_AUTO_REPLY, FLAG_BULK, FLAG_BOUNCE,
FLAG_READ_RECEIPT} from headers and structure only (never from the body's wording,
except the subject of out-of-office replies and of plain-text bounces, where nothing
else tells). RFC 3834 (Auto-Submitted), RFC 2369/2919 (List-*), RFC 3464 (DSN) and
RFC 3798 (MDN) are the standards; the rest are the de-facto headers Exchange, Mimecast,
Gmail and mailing-list software write.
"""

from __future__ import annotations

import re
from email.message import Message

from inbox.types import FLAG_AUTO_REPLY, FLAG_BOUNCE, FLAG_BULK, FLAG_READ_RECEIPT

__all__ = ["machine_flags", "report_type"]

_REPLY_PREFIX = r"^(?:\s*(?:re|aw|sv|vs|antw|odp|ynt|fw|fwd|wg|tr)\s*(?:\[\d+\])?\s*:\s*)*"
# Out-of-office subjects. Ambiguous phrases ("out of office", "absence") must end the
# subject or be followed by ":" / "-" so "Out of office hours support?" is a customer.
_OOO_SUBJECT = re.compile(
    _REPLY_PREFIX
    + r"(?:"
    r"(?:automatic|auto)[\s-]*(?:reply|response|respons|answer)|autoreply|auto-?respon\w*|"
    r"abwesenheitsnotiz|automatische\s+antwort|r[ée]ponse\s+automatique|"
    r"respuesta\s+autom[áa]tica|resposta\s+autom[áa]tica|risposta\s+automatica|"
    r"automatisch\s+antwoord|automatisk\s+svar|autosvar|automatyczna\s+odpowied[źz]|"
    r"автоматический\s+ответ|自動応答|自動返信|自動回覆|自动回复|자동\s*응답|부재중|"
    r"(?:out\s+of\s+(?:the\s+)?office|away\s+from\s+(?:the\s+)?office|on\s+vacation|"
    r"vacation\s+(?:reply|message|notice)|absence|abwesend|absent|fuera\s+de\s+la\s+oficina|"
    r"fuori\s+(?:sede|ufficio)|afwezig|frånvarande|fraværende|不在(?:通知)?)"
    r"(?=\s*(?:[:：\-–(]|$|until|bis|jusqu))"
    r")",
    re.IGNORECASE,
)
_BOUNCE_SUBJECT = re.compile(
    _REPLY_PREFIX
    + r"(?:undeliver(?:able|ed)|delivery\s+status\s+notification\s+\(failure\)|"
    r"mail\s+delivery\s+(?:failed|failure|system)|returned\s+mail|failure\s+notice|"
    r"delivery\s+(?:failure|has\s+failed|notification:\s*delivery\s+has\s+failed)|"
    r"nicht\s+zustellbar|unzustellbar|non\s+remis|non\s+distribuable|"
    r"message\s+not\s+delivered)",
    re.IGNORECASE,
)
_DAEMON = re.compile(r"^(?:mailer-daemon|postmaster|mail-daemon|mailerdaemon)(?:@|$)", re.IGNORECASE)


def report_type(msg: Message) -> str | None:
    """The multipart/report's report-type, inferred from its parts when the header omits it."""
    if msg.get_content_type() != "multipart/report":
        return None
    declared = msg.get_param("report-type")
    if isinstance(declared, str) and declared:
        return declared.lower()
    for part in msg.walk():
        kind = part.get_content_type()
        if kind in ("message/delivery-status", "message/global-delivery-status"):
            return "delivery-status"
        if kind in ("message/disposition-notification", "message/global-disposition-notification"):
            return "disposition-notification"
    return None


def machine_flags(
    msg: Message,
    *,
    headers: dict[str, str],
    sender: str,
    subject: str,
    is_reply: bool,
) -> frozenset[str]:
    """The machine-mail flags for `msg`; `headers` maps lower-case names to decoded values."""
    flags: set[str] = set()
    kind = report_type(msg)
    if kind == "disposition-notification":
        flags.add(FLAG_READ_RECEIPT)
    if kind == "delivery-status" or _is_plain_bounce(headers, sender, subject):
        flags.add(FLAG_BOUNCE)
    if _is_auto_reply(headers, subject):
        flags.add(FLAG_AUTO_REPLY)
    if _is_bulk(headers, is_reply=is_reply):
        flags.add(FLAG_BULK)
    # A null return path (RFC 5321 4.5.5) marks machine mail that must not be answered;
    # with no other sign it is a bounce (auto-replies and MDNs use it too).
    if _null_return_path(headers) and not flags & {FLAG_AUTO_REPLY, FLAG_READ_RECEIPT}:
        flags.add(FLAG_BOUNCE)
    return frozenset(flags)


def _is_auto_reply(headers: dict[str, str], subject: str) -> bool:
    auto = headers.get("auto-submitted", "").split(";")[0].split("(")[0].strip().lower()
    if auto and auto != "no":
        return True
    if any(name in headers for name in ("x-autoreply", "x-autorespond", "x-autoresponder")):
        return True
    if headers.get("precedence", "").strip().lower() == "auto_reply":
        return True
    if headers.get("x-precedence", "").strip().lower() == "auto_reply":
        return True
    # Exchange writes no Auto-Submitted on out-of-office replies, only this header (which
    # Outlook also puts on ordinary mail) plus an "Automatic reply:" subject.
    return bool(_OOO_SUBJECT.search(subject))


def _is_bulk(headers: dict[str, str], *, is_reply: bool) -> bool:
    if headers.get("precedence", "").strip().lower() in ("bulk", "junk", "list"):
        return True
    if "list-id" in headers:
        return True
    # Newsletters carry List-Unsubscribe; a person's reply through some providers does too.
    return "list-unsubscribe" in headers and not is_reply


def _is_plain_bounce(headers: dict[str, str], sender: str, subject: str) -> bool:
    if "x-failed-recipients" in headers or _DAEMON.match(sender):
        return True
    # Gmail and Exchange send some bounces as plain text: only the subject tells.
    machine = _null_return_path(headers) or "auto-submitted" in headers
    return machine and bool(_BOUNCE_SUBJECT.search(subject))


def _null_return_path(headers: dict[str, str]) -> bool:
    return headers.get("return-path", "").replace(" ", "") == "<>"
