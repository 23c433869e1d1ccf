"""`message_out` and `conversation_out` build by hand exactly what their pydantic models
(`MessageOut`, `ConversationOut`) dump: the same keys in the same order, the same values
(datetimes written as pydantic writes them)."""

from __future__ import annotations

import json
import random
from datetime import UTC, datetime, timedelta, timezone
from types import SimpleNamespace
from typing import Any

from inbox.schemas import ConversationOut, _message_model, conversation_out, json_time, message_out


def _time(rng: random.Random, *, utc_only: bool = False) -> datetime:
    zones: list[Any] = [UTC] if utc_only else [UTC, timezone(timedelta(hours=9)),
                                                timezone(timedelta(hours=-3, minutes=-30))]
    return datetime(rng.randint(2000, 2100), rng.randint(1, 12), rng.randint(1, 28),
                    rng.randint(0, 23), rng.randint(0, 59), rng.randint(0, 59),
                    rng.choice((0, 500_000, rng.randint(0, 999_999))), tzinfo=rng.choice(zones))


def _same(fast: dict[str, Any], slow: dict[str, Any]) -> None:
    assert list(fast) == list(slow)
    assert json.dumps(fast) == json.dumps(slow)


def test_message_out_is_the_models_dump() -> None:
    rng = random.Random(3)
    for i in range(500):
        message = SimpleNamespace(
            id=i, conversation_id=rng.randint(1, 9), channel=rng.choice(("sms", "email")),
            direction=rng.choice(("in", "out")), author_kind="customer",
            author_agent_id=rng.choice((None, 4)), text="héllo <b>" * rng.randint(0, 3),
            html=rng.choice((None, "<p>x</p>")),
            attachments=[{"id": 1, "name": "a.png", "data": b"xx", "size": 2}][:rng.randint(0, 1)],
            delivery_status=rng.choice((None, "sent")), error_code=None,
            error_text=rng.choice((None, "boom")), private=rng.choice((True, False)),
            flags=rng.sample(["auto_reply", "opt_out", "help"], rng.randint(0, 3)),
            meta=rng.choice(({}, {"wa": {"id": "x", "n": [1, 2.5, None]}})),
            created_at=_time(rng))
        slow = _message_model(message)  # type: ignore[arg-type]
        _same(message_out(message), slow)  # type: ignore[arg-type]


def test_conversation_out_is_the_models_dump() -> None:
    rng = random.Random(5)
    for i in range(500):
        conv = SimpleNamespace(
            id=i, contact_id=rng.randint(1, 9), channel="whatsapp", provider="meta",
            our_address=rng.choice((None, "+15550001111")), customer_address="+82101234",
            subject=rng.choice((None, "Where is ü order")), status=rng.choice(("open", "snoozed")),
            assignee_id=rng.choice((None, 2)), handled_by=rng.choice(("bot", "human")),
            snoozed_until=rng.choice((None, _time(rng))), last_activity_at=_time(rng),
            last_customer_at=rng.choice((None, _time(rng))), unread_count=rng.randint(0, 5),
            created_at=_time(rng))
        name = rng.choice((None, "Kim"))
        slow = ConversationOut.model_validate(conv).dump()
        slow["contact_name"] = name
        _same(conversation_out(conv, contact_name=name), slow)  # type: ignore[arg-type]


def test_json_time_writes_utc_as_pydantic_does_and_defers_to_it_otherwise() -> None:
    assert json_time(datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)) == "2026-01-02T03:04:05Z"
    assert json_time(datetime(2026, 1, 2, 3, 4, 5, 60, tzinfo=UTC)) == "2026-01-02T03:04:05.000060Z"
    odd = timezone(timedelta(seconds=3725))  # pydantic drops the offset's seconds
    assert json_time(datetime(2026, 1, 2, 3, 4, 5, tzinfo=odd)) == "2026-01-02T03:04:05+01:02"


def test_utc_text_forms_are_isoformats() -> None:
    from inbox.timetext import utc_iso, utc_json, utc_text

    rng = random.Random(8)
    for _ in range(3000):
        value = _time(rng, utc_only=True)
        assert utc_text(value) == value.replace(tzinfo=None).isoformat(" ", "microseconds")
        assert utc_iso(value) == value.isoformat()
        assert utc_json(value) == value.isoformat().replace("+00:00", "Z")
