"""The pipeline steps: each is one transaction that writes state, its events and its
outbox rows together, then publishes and dispatches only after commit.

    ingest(Inbound)          a customer's message arrives (any channel)   inbox.ingest
    record_status(Status)    a provider reports on one of our messages   inbox.replies
    reply(...) / retry_message(...)  an agent, the bot or the system answers
    assign / set_status / take_over / hand_over / split_message / mark_read /
    identify_visitor                                                   inbox.conversation_ops

This module is the stable entry point the other packages call.
"""

from __future__ import annotations

from inbox.conversation_ops import (
    STATUSES,
    assign,
    hand_over,
    identify_visitor,
    mark_read,
    set_status,
    split_message,
    take_over,
)
from inbox.ingest import IngestResult, ingest
from inbox.replies import record_status, reply, retry_message

__all__ = [
    "STATUSES",
    "IngestResult",
    "assign",
    "hand_over",
    "identify_visitor",
    "ingest",
    "mark_read",
    "record_status",
    "reply",
    "retry_message",
    "set_status",
    "split_message",
    "take_over",
]
