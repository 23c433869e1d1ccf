"""Event wire forms: a frame made from the payload text the event log stores is the
frame the event's fields encode to."""

from __future__ import annotations

import json
from typing import Any

import pytest

from inbox.events import EventOut, encode_payload


@pytest.mark.parametrize("payload", [
    {},
    {"message": {"text": "안녕하세요, où est ma commande? \"quoted\" \\ line\nbreak"}},
    {"conversation": {"id": 3, "unread_count": 2, "score": 0.5, "tags": [], "closed": None}},
    {"type": "overridden in place", "x": 1},  # a payload key the frame puts first
    {"text": "\ud800 a lone surrogate, as a JSON webhook's escape may carry"},
])
@pytest.mark.parametrize("conversation_id", [None, 7])
def test_event_built_from_its_stored_payload_text_sends_the_frame_of_its_fields(
    payload: dict[str, Any], conversation_id: int | None,
) -> None:
    text, _compact = encode_payload(payload)
    assert json.loads(text) == payload
    built = EventOut.encoded(seq=41, type="message.created", conversation_id=conversation_id,
                             payload=payload, created_at=None, payload_text=(text, _compact))
    plain = EventOut(seq=41, type="message.created", conversation_id=conversation_id,
                     payload=payload)
    assert built.wire() == plain.wire()
    assert json.loads(built.wire()) == plain.to_json()


def test_payload_utf8_cannot_carry_is_stored_ascii_escaped() -> None:
    text, compact = encode_payload({"text": "\ud800"})
    assert text.isascii() and not compact
    text.encode("utf-8")  # the database takes it
