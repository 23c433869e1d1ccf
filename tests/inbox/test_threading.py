"""Which conversation a message belongs to: subject normalisation and follow-up rules."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from inbox.threading import (
    ConversationView,
    follow_up,
    is_reply_subject,
    normalise_subject,
    subject_continues,
)

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
WINDOW = timedelta(hours=72)


@pytest.mark.parametrize("subject", [
    "Order 1001",
    "Re: Order 1001",
    "RE: Order 1001",
    "re:Order 1001",
    "Fwd: Order 1001",
    "FW: Order 1001",
    "AW: Order 1001",
    "SV: Order 1001",
    "WG: Order 1001",
    "답장: Order 1001",
    "회신: Order 1001",
    "RE[2]: Order 1001",
    "Re^3: Order 1001",
    "Re: Re: Fwd: Order 1001",
    "Re: [Shop #123] Order 1001",
    "回复：Order 1001",
    "  Re:   Order    1001  ",
    "re: order 1001",
])
def test_reply_and_forward_prefixes_are_removed_from_subjects(subject: str) -> None:
    assert normalise_subject(subject) == "order 1001"


def test_words_that_merely_start_like_a_prefix_are_kept() -> None:
    assert normalise_subject("Refund for order 1001") == "refund for order 1001"
    assert normalise_subject("Sverige delivery") == "sverige delivery"


def test_missing_subject_normalises_to_empty() -> None:
    assert normalise_subject(None) == ""
    assert normalise_subject("Re: ") == ""


def test_reply_subject_is_recognised_by_its_prefix() -> None:
    assert is_reply_subject("AW: Bestellung")
    assert not is_reply_subject("Bestellung")
    assert not is_reply_subject(None)


def test_same_topic_continues_and_changed_topic_does_not() -> None:
    assert subject_continues("Order 1001", "Re: Order 1001")
    assert subject_continues("Order 1001", "")  # clients that drop the subject
    assert subject_continues(None, "Re: anything")
    assert not subject_continues("Order 1001", "New question about sizes")


def _conv(status: str, *, resolved_ago: timedelta | None = None) -> ConversationView:
    resolved_at = NOW - resolved_ago if resolved_ago is not None else None
    return ConversationView(1, status, NOW - timedelta(days=30), resolved_at, None)


def test_no_candidate_conversation_starts_a_new_one() -> None:
    assert follow_up(None, now=NOW, reopen_window=WINDOW, machine=False) == "new"


@pytest.mark.parametrize("status", ["open", "pending", "snoozed"])
def test_message_to_unresolved_conversation_is_appended(status: str) -> None:
    assert follow_up(_conv(status), now=NOW, reopen_window=WINDOW, machine=False) == "append"


def test_customer_message_within_window_reopens_resolved_conversation() -> None:
    conv = _conv("resolved", resolved_ago=timedelta(hours=71))
    assert follow_up(conv, now=NOW, reopen_window=WINDOW, machine=False) == "reopen"


def test_customer_message_exactly_at_window_edge_still_reopens() -> None:
    conv = _conv("resolved", resolved_ago=WINDOW)
    assert follow_up(conv, now=NOW, reopen_window=WINDOW, machine=False) == "reopen"


def test_customer_message_after_window_starts_new_conversation() -> None:
    conv = _conv("resolved", resolved_ago=timedelta(hours=73))
    assert follow_up(conv, now=NOW, reopen_window=WINDOW, machine=False) == "new"


@pytest.mark.parametrize("ago", [timedelta(minutes=5), timedelta(days=30)])
def test_machine_message_never_reopens_a_resolved_conversation(ago: timedelta) -> None:
    conv = _conv("resolved", resolved_ago=ago)
    assert follow_up(conv, now=NOW, reopen_window=WINDOW, machine=True) == "append"


def test_resolved_conversation_without_resolved_time_uses_last_activity() -> None:
    old = ConversationView(1, "resolved", NOW - timedelta(days=10), None)
    recent = ConversationView(1, "resolved", NOW - timedelta(hours=1), None)
    assert follow_up(old, now=NOW, reopen_window=WINDOW, machine=False) == "new"
    assert follow_up(recent, now=NOW, reopen_window=WINDOW, machine=False) == "reopen"
