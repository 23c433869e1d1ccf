"""Which conversation a message belongs to: pure rules, no database.

The pipeline gathers the candidates (by email headers, reply token, same thread key,
same subject) and these functions decide.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal

# Reply/forward prefixes in the languages our shops' customers write in; also
# "RE[2]:" / "Re^2:" counters some clients add (Outlook, old Eudora).
_PREFIX = re.compile(
    r"^\s*(?:(?:re|fw|fwd|aw|wg|sv|vs|antw|rif|tr|r|ynt|odp|vá|答复|回复|转发|답장|회신|전달)"
    r"\s*(?:\[\d+\]|\^\d+|\(\d+\))?\s*[:：]\s*)+",
    re.IGNORECASE,
)
_TAG = re.compile(r"^\s*\[[^\]]{1,40}\]\s*")  # "[Shop #123]" style list/ticket tags
_SPACE = re.compile(r"\s+")


def normalise_subject(subject: str | None) -> str:
    """The subject without reply/forward prefixes and tags, case-folded, spaces folded."""
    value = subject or ""
    previous = None
    while previous != value:
        previous = value
        value = _PREFIX.sub("", value)
        value = _TAG.sub("", value)
    return _SPACE.sub(" ", value).strip().casefold()


def is_reply_subject(subject: str | None) -> bool:
    """Whether the subject carries a reply/forward prefix."""
    return bool(subject) and bool(_PREFIX.match(subject or ""))


@dataclass(frozen=True, slots=True)
class ConversationView:
    """What the threading rules need to know of a candidate conversation."""

    id: int
    status: str
    last_activity_at: datetime
    resolved_at: datetime | None
    subject: str | None = None


Action = Literal["append", "reopen", "new"]


def follow_up(
    conversation: ConversationView | None,
    *,
    now: datetime,
    reopen_window: timedelta,
    machine: bool,
) -> Action:
    """What a new message does to the latest conversation of its thread.

    Unresolved: append. Resolved within the window: reopen, except that a machine's
    message (auto-reply, bounce, receipt) never reopens anything by itself: it is
    appended quietly. Resolved longer ago (or no conversation): a new one.
    """
    if conversation is None:
        return "new"
    if conversation.status != "resolved":
        return "append"
    if machine:
        return "append"
    resolved_at = conversation.resolved_at or conversation.last_activity_at
    return "reopen" if now - resolved_at <= reopen_window else "new"


def subject_continues(conversation_subject: str | None, subject: str | None) -> bool:
    """Whether a reply's subject still belongs to the conversation's topic.

    An empty subject on either side continues (SMS-like mail, clients that drop it); a
    changed topic ("Re: Order 1" answered as "New question about sizes") does not.
    """
    a, b = normalise_subject(conversation_subject), normalise_subject(subject)
    if not a or not b:
        return True
    return a == b or a in b or b in a
