"""Typed events: what the event log stores and the hub fans out.

An event is created inside the transaction that caused it (as an `Event` row) and
published only after commit, as an `EventOut`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

from inbox import jsontext
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
            self._text.append(jsontext.compact(self.to_json()))
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
    def encoded(cls, *, seq: int, type: str, conversation_id: int | None,
                payload: dict[str, Any], created_at: datetime | None,
                payload_text: PayloadText) -> EventOut:
        """The committed event whose payload was encoded as `payload_text`
        (`encode_payload`): its `wire()` text is built from that text, not encoded again
        (the same text `wire()` would produce)."""
        event = cls(seq=seq, type=type, conversation_id=conversation_id, payload=payload,
                    created_at=created_at)
        text, compact = payload_text
        if compact and not _WIRE_KEYS.intersection(payload):
            head = (f'{{"seq":{seq:d},"type":{json.dumps(type, ensure_ascii=False)},'
                    f'"conversation_id":{"null" if conversation_id is None else f"{conversation_id:d}"}')
            event._text.append(head + "}" if text == "{}" else head + "," + text[1:])
        return event

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


# The keys `to_json` puts first; a payload holding one of them overrides it in place.
_WIRE_KEYS = frozenset(("seq", "type", "conversation_id"))

# A payload's JSON text, and whether it is the compact form `wire()` uses.
PayloadText = tuple[str, bool]


def encode_payload(payload: dict[str, Any]) -> PayloadText:
    """`payload` as the JSON text the event log stores: the compact, non-ASCII-escaped
    form `EventOut.wire()` uses (so the frame reuses it, `EventOut.encoded`), or the
    ASCII-escaped form when the text holds what UTF-8 cannot carry (a lone surrogate
    from a JSON webhook's escape), as the log stored every payload before.

    An agent's frame costs one encoding per event instead of two (the log's, then the
    wire's): ~1.2 KB per message.created.
    """
    text = jsontext.compact(payload)
    if text.isascii():
        return text, True
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return json.dumps(payload), False
    return text, True


def view_fields(conversation: Conversation | Any) -> dict[str, Any]:
    """The fields that decide which views (inbox lists) a conversation belongs to.

    A step that may change them records these *before* the change as the event's
    `"previous"`, so a socket watching a view the conversation leaves still hears of it.
    `conversation` is a row or anything else with these attributes.
    """
    return {"status": conversation.status, "assignee_id": conversation.assignee_id,
            "channel": conversation.channel, "handled_by": conversation.handled_by}
