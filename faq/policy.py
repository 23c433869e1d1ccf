"""The auto-answer policy: may the bot answer this message, and if not, who gets it (pure).

Ownership is explicit: a conversation is handled by the bot until the bot hands it to
the human queue or an agent takes it (replies, takes over, is assigned); from then on
the bot stays silent until the conversation is resolved (which hands it back).

For one customer message the verdict is one of

    answer     send the entry's answer (matcher confident, everything allows it)
    handover   give the conversation to a person (and tell the agents why)
    ignore     do nothing (not ours to handle, a robot wrote it, or small talk)

Checks, in order (the first that fires decides):

    conversation handled by a human              ignore   human_owned
    auto-reply / bounce / read receipt / bulk    ignore   machine
    STOP / START / HELP keyword                  ignore   keyword (the SMS rules answer)
    channel where the bot is switched off        ignore   channel_off
    no text (only attachments)                   handover attachment_only
    asks for a person                            handover wants_human (+ acknowledgement)
    "no, that didn't help" after a bot answer    handover negative_feedback
    only greetings / thanks                      ignore   smalltalk
    order number, complaint, payment problem...  handover one of faq.signals.REASONS
    bot already answered max_bot_answers times   handover bot_answer_limit
    best entry below threshold, or too close
      to the runner-up                           handover not_confident
    entry disabled or not for this channel       handover entry_not_for_channel
    otherwise                                    answer
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from faq import signals
from faq.matcher import DEFAULT_THRESHOLD, MatchResult
from inbox.types import CHANNELS, FLAG_HELP, FLAG_OPT_IN, FLAG_OPT_OUT, MACHINE_FLAGS

Action = Literal["answer", "handover", "ignore"]

# The runner-up's confidence must trail the best entry's by this much. The matcher's
# confidence already reflects the margin; this is a second, explicit guard against two
# entries that both look right (on the shop FAQ runner-ups sit below 0.1 for clear
# questions, and near the top for genuinely ambiguous ones).
DEFAULT_MIN_MARGIN = 0.25
# Bot answers per conversation before a person takes over (the default).
DEFAULT_MAX_BOT_ANSWERS = 3
_KEYWORD_FLAGS = frozenset({FLAG_OPT_OUT, FLAG_OPT_IN, FLAG_HELP})


@dataclass(frozen=True, slots=True)
class Policy:
    """The knobs (environment: INBOX_FAQ_THRESHOLD, INBOX_FAQ_MIN_MARGIN,
    INBOX_FAQ_MAX_BOT_ANSWERS, INBOX_FAQ_CHANNELS)."""

    threshold: float = DEFAULT_THRESHOLD
    min_margin: float = DEFAULT_MIN_MARGIN
    max_bot_answers: int = DEFAULT_MAX_BOT_ANSWERS
    channels: tuple[str, ...] = CHANNELS


@dataclass(frozen=True, slots=True)
class Situation:
    """What the responder knows about one customer message and its conversation.

    `answered_entry_id` is the FAQ entry of the bot's answer when that answer is the
    last thing we said in the conversation (what "no, that didn't help" refers to).
    """

    text: str
    channel: str
    handled_by: str = "bot"
    bot_answers: int = 0
    flags: frozenset[str] = frozenset()
    has_attachments: bool = False
    answered_entry_id: int | None = None


@dataclass(frozen=True, slots=True)
class EntryFacts:
    """What the policy needs to know about the matched entry."""

    id: int
    enabled: bool = True
    channels: tuple[str, ...] = ()  # empty: every channel


@dataclass(frozen=True, slots=True)
class Decision:
    """The verdict. `record` asks for an unanswered-question row; `feedback_entry_id`
    names the entry whose answer the customer rejected; `acknowledge` asks for a short
    "a person will answer" message to the customer."""

    action: Action
    reason: str
    entry_id: int | None = None
    confidence: float = 0.0
    acknowledge: bool = False
    record: bool = False
    feedback_entry_id: int | None = None
    candidates: tuple[tuple[int, float], ...] = field(default=())


def _handover(reason: str, **kw: object) -> Decision:
    return Decision("handover", reason, record=True, **kw)  # type: ignore[arg-type]


# `screen` verdicts that depend only on the message and on who handles the conversation
# (no earlier bot answer, no answer count): the responder may act on them before it
# reads anything from the database.
SETTLED_BY_EVENT = frozenset({"human_owned", "machine", "keyword", "channel_off", "empty"})


def screen(s: Situation, policy: Policy) -> Decision | None:
    """The verdict when it does not depend on the FAQ match; None: go on and match."""
    if s.handled_by != "bot":
        return Decision("ignore", "human_owned")
    if s.flags & MACHINE_FLAGS:
        return Decision("ignore", "machine")
    if s.flags & _KEYWORD_FLAGS:
        return Decision("ignore", "keyword")
    if s.channel not in policy.channels:
        return Decision("ignore", "channel_off")
    text = s.text.strip()
    if not text:
        return _handover("attachment_only") if s.has_attachments else Decision("ignore", "empty")
    if signals.wants_human(text):
        return Decision("handover", "wants_human", acknowledge=True, record=True)
    if s.answered_entry_id is not None and signals.is_negative_feedback(text):
        return _handover("negative_feedback", feedback_entry_id=s.answered_entry_id)
    if signals.is_smalltalk(text):
        return Decision("ignore", "smalltalk")
    reason = signals.needs_human(text)
    if reason is not None:
        return _handover(reason)
    if s.bot_answers >= policy.max_bot_answers:
        return _handover("bot_answer_limit")
    return None


def margin(match: MatchResult) -> float:
    """How far the best entry's confidence is ahead of the runner-up's."""
    if len(match.candidates) < 2:
        return match.confidence
    return match.confidence - match.candidates[1].confidence


def confident(match: MatchResult, policy: Policy) -> bool:
    """Whether the matcher is sure enough, and far enough ahead of the runner-up, to answer."""
    return match.confidence >= policy.threshold and margin(match) >= policy.min_margin


def judge(s: Situation, match: MatchResult, entry: EntryFacts | None, policy: Policy) -> Decision:
    """The verdict for a message `screen` let through, given the matcher's result and
    the matched entry (None when the matcher's best id is no longer an entry)."""
    cands = tuple((int(c.id), round(c.confidence, 4)) for c in match.candidates)
    common = dict(confidence=round(match.confidence, 4), candidates=cands)
    if entry is None or not confident(match, policy):
        closest = entry.id if entry else (int(match.entry_id) if match.entry_id else None)
        return _handover("not_confident", entry_id=closest, **common)
    if not entry.enabled or (entry.channels and s.channel not in entry.channels):
        return _handover("entry_not_for_channel", entry_id=entry.id, **common)
    return Decision("answer", "confident", entry_id=entry.id, **common)  # type: ignore[arg-type]


def decide(s: Situation, match: MatchResult | None, entry: EntryFacts | None,
           policy: Policy) -> Decision:
    """`screen`, then `judge` (convenience for callers that matched already)."""
    early = screen(s, policy)
    if early is not None:
        return early
    if match is None:
        return _handover("not_confident")
    return judge(s, match, entry, policy)


# Plain words for the private note agents see when the bot hands over.
REASON_TEXT: dict[str, str] = {
    "attachment_only": "the customer sent only an attachment",
    "wants_human": "the customer asked for a person",
    "negative_feedback": "the customer said the bot's answer did not help",
    "bot_answer_limit": "the bot answered as often as it may in one conversation",
    "not_confident": "no FAQ entry fits this question well enough",
    "entry_not_for_channel": "the matching FAQ entry is not used on this channel",
    "needs_order": "the answer needs the customer's order and none was found",
    "send_refused": "the bot's answer could not be sent on this channel",
    "order_reference": "the message mentions an order or reference number",
    "contact_details": "the message contains contact details",
    "legal_threat": "the customer mentions legal steps",
    "account_security": "possible account security problem",
    "payment_problem": "payment problem",
    "technical_problem": "technical problem on our site",
    "damaged_or_wrong_item": "damaged, wrong or missing item",
    "delivery_problem": "delivery problem",
    "overdue": "the customer has been waiting too long",
    "complaint": "complaint",
}


def reason_text(reason: str) -> str:
    """A short explanation of `reason` for agents."""
    return REASON_TEXT.get(reason, reason.replace("_", " "))
