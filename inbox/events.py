"""Typed events: what the event log stores and the hub fans out.

An event is created inside the transaction that caused it (as an `Event` row) and
published only after commit, as an `EventOut`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

from inbox.models import Conversation, Event

EventType = Literal[
    "message.created",
    "message.updated",
    "conversation.created",
    "conversation.updated",
    "contact.updated",
    "typing",
]


@dataclass(frozen=True, slots=True)
class EventOut:
    """A committed event. `seq` is None only for ephemeral events (typing, presence)."""

    seq: int | None
    type: str
    conversation_id: int | None
    payload: dict[str, Any] = field(default_factory=dict)
    created_at: datetime | None = None
    # The encoded wire form, computed once however many sockets send it.
    _text: list[str] = field(default_factory=list, compare=False, repr=False)

    def wire(self) -> str:
        """`to_json()` as compact JSON text (cached: encode once per process, not per socket)."""
        if not self._text:
            self._text.append(json.dumps(self.to_json(), separators=(",", ":"), ensure_ascii=False))
        return self._text[0]

    def to_json(self) -> dict[str, Any]:
        """The wire shape: `{"seq", "type", "conversation_id", **payload}`."""
        data: dict[str, Any] = {
            "seq": self.seq,
            "type": self.type,
            "conversation_id": self.conversation_id,
        }
        data.update(self.payload)
        return data

    @classmethod
    def from_row(cls, row: Event) -> EventOut:
        """The public event for a stored row."""
        return cls(
            seq=row.seq,
            type=row.type,
            conversation_id=row.conversation_id,
            payload=row.payload,
            created_at=row.created_at,
        )


def view_fields(conversation: Conversation | Any) -> dict[str, Any]:
    """The fields that decide which views (inbox lists) a conversation belongs to.

    A step that may change them records these *before* the change as the event's
    `"previous"`, so a socket watching a view the conversation leaves still hears of it.
    `conversation` is a row or anything else with these attributes.
    """
    return {"status": conversation.status, "assignee_id": conversation.assignee_id,
            "channel": conversation.channel, "handled_by": conversation.handled_by}
