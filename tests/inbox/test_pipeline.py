"""The ingest/reply pipeline on a real database (SQLite and PostgreSQL).

Everything goes through `inbox.pipeline`; the database is read back with plain queries.
"""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import func, select, update
from pydantic import ValidationError
from sqlalchemy.exc import StatementError

from inbox import pipeline, store
from inbox.errors import BadInput, Conflict, NotFound, PolicyRefused
from inbox.models import Contact, Conversation, Event, Identity, Message, OutboxRow
from inbox.runtime import Runtime
from inbox.types import FLAG_AUTO_REPLY, FLAG_OPT_IN, FLAG_OPT_OUT, Inbound, ThreadHints, utcnow

OUR_NUMBER = "+15550009999"
_counter = 0


def sms(text: str = "hello", *, sender: str = "+15550102030", channel: str = "sms",
        pid: str | None = None, **kw: Any) -> Inbound:
    """An inbound SMS/WhatsApp as the Twilio connector produces it."""
    global _counter
    _counter += 1
    return Inbound(channel=channel, provider="twilio", provider_message_id=pid or f"SM{_counter:032d}",
                   sender=sender, sender_kind="phone", recipient=OUR_NUMBER, text=text, **kw)


def mail(text: str = "hello", *, sender: str = "maria@example.com", subject: str = "Order 1001",
         pid: str | None = None, **kw: Any) -> Inbound:
    global _counter
    _counter += 1
    mid = pid or f"<m{_counter}@mail.example>"
    return Inbound(channel="email", provider="email", provider_message_id=mid, sender=sender,
                   sender_kind="email", recipient="support@shop.example", text=text,
                   thread=ThreadHints(message_id=mid, subject=subject), **kw)


async def count(rt: Runtime, model: Any) -> int:
    async with rt.sessions() as session:
        result = await session.exec(select(func.count()).select_from(model))  # type: ignore[call-overload]
        return int(result.scalar())


async def rows(rt: Runtime, model: Any) -> list[Any]:
    async with rt.sessions() as session:
        result = await session.exec(select(model))  # type: ignore[call-overload]
        return list(result.scalars().all())


async def conversation(rt: Runtime, cid: int) -> Conversation:
    async with rt.sessions() as session:
        conv = await session.get(Conversation, cid)
        assert conv is not None
        return conv


async def set_resolved_ago(rt: Runtime, cid: int, ago: timedelta) -> None:
    """Resolve through the pipeline, then age the resolution (test setup, not a shortcut)."""
    await pipeline.set_status(rt, conversation_id=cid, status="resolved")
    async with rt.sessions() as session, session.begin():
        await session.exec(update(Conversation).where(Conversation.id == cid)  # type: ignore[call-overload]
                           .values(resolved_at=utcnow() - ago))


# ---------------------------------------------------------------------------- identity


async def test_one_number_in_three_formats_is_one_contact_with_one_identity(rt: Runtime) -> None:
    results = [await pipeline.ingest(rt, sms(sender=s)) for s in
               ("(555) 010-2030", "+15550102030", "whatsapp:+15550102030")]
    assert len({r.contact_id for r in results}) == 1
    assert len({r.conversation_id for r in results}) == 1
    [identity] = await rows(rt, Identity)
    assert (identity.kind, identity.value) == ("phone", "+15550102030")
    assert await count(rt, Contact) == 1


async def test_sms_and_whatsapp_from_one_number_are_one_contact_with_two_conversations(
    rt: Runtime,
) -> None:
    by_sms = await pipeline.ingest(rt, sms("on sms"))
    by_whatsapp = await pipeline.ingest(rt, sms("on whatsapp", channel="whatsapp"))
    assert by_sms.contact_id == by_whatsapp.contact_id
    assert by_sms.conversation_id != by_whatsapp.conversation_id
    channels = {(await conversation(rt, r.conversation_id)).channel for r in (by_sms, by_whatsapp)}
    assert channels == {"sms", "whatsapp"}


async def test_email_addresses_differing_in_case_are_one_contact(rt: Runtime) -> None:
    first = await pipeline.ingest(rt, mail(sender="Maria.Lopez@Example.COM"))
    second = await pipeline.ingest(rt, mail(sender="maria.lopez@example.com"))
    assert first.contact_id == second.contact_id
    [identity] = await rows(rt, Identity)
    assert identity.value == "maria.lopez@example.com"


async def test_unreadable_sender_is_bad_input_and_stores_nothing(rt: Runtime) -> None:
    with pytest.raises(BadInput):
        await pipeline.ingest(rt, mail(sender="not an address"))
    assert await count(rt, Message) == 0 and await count(rt, Event) == 0


async def test_inbound_sms_from_known_number_appends_to_open_conversation(rt: Runtime) -> None:
    first = await pipeline.ingest(rt, sms("one"))
    second = await pipeline.ingest(rt, sms("two"))
    assert second.conversation_id == first.conversation_id
    conv = await conversation(rt, first.conversation_id)
    assert conv.unread_count == 2 and conv.status == "open"


async def test_first_message_creates_conversation_and_message_events(rt: Runtime) -> None:
    result = await pipeline.ingest(rt, sms("hi"))
    assert [e.type for e in result.events] == ["conversation.created", "message.created"]
    assert result.events[1].payload["message"]["text"] == "hi"
    again = await pipeline.ingest(rt, sms("again"))
    assert [e.type for e in again.events] == ["message.created"]


# ---------------------------------------------------------------------------- idempotency


async def test_same_provider_id_twice_stores_one_message_and_one_event(rt: Runtime) -> None:
    first = await pipeline.ingest(rt, sms("hello", pid="SMdup"))
    events_after_first = await count(rt, Event)
    second = await pipeline.ingest(rt, sms("hello", pid="SMdup"))
    assert second.duplicate and not first.duplicate
    assert second.message_id == first.message_id
    assert second.events == []
    assert await count(rt, Message) == 1
    assert await count(rt, Event) == events_after_first


async def test_same_provider_id_on_another_channel_is_another_message(rt: Runtime) -> None:
    await pipeline.ingest(rt, sms(pid="X1"))
    await pipeline.ingest(rt, sms(pid="X1", channel="whatsapp"))
    assert await count(rt, Message) == 2


async def test_concurrent_ingests_of_one_provider_id_store_one_message(rt: Runtime) -> None:
    results = await asyncio.gather(*(pipeline.ingest(rt, sms("race", pid="SMrace")) for _ in range(2)))
    assert sorted(r.duplicate for r in results) == [False, True]
    assert len({r.message_id for r in results}) == 1
    assert await count(rt, Message) == 1
    assert await count(rt, Contact) == 1 and await count(rt, Identity) == 1
    assert [e.type for e in await rows(rt, Event)] == ["conversation.created", "message.created"]


async def test_concurrent_first_messages_from_one_new_number_make_one_contact(rt: Runtime) -> None:
    results = await asyncio.gather(*(pipeline.ingest(rt, sms(f"m{i}")) for i in range(3)))
    assert len({r.contact_id for r in results}) == 1
    assert await count(rt, Identity) == 1
    assert await count(rt, Message) == 3


# ---------------------------------------------------------------------------- follow-ups


async def test_message_within_window_reopens_resolved_conversation(rt: Runtime) -> None:
    first = await pipeline.ingest(rt, sms("help"))
    await set_resolved_ago(rt, first.conversation_id, timedelta(hours=1))
    again = await pipeline.ingest(rt, sms("still broken"))
    assert again.conversation_id == first.conversation_id
    conv = await conversation(rt, first.conversation_id)
    assert conv.status == "open" and conv.resolved_at is None


async def test_message_after_window_starts_new_conversation(rt: Runtime) -> None:
    first = await pipeline.ingest(rt, sms("help"))
    await set_resolved_ago(rt, first.conversation_id, timedelta(hours=rt.settings.reopen_window_hours + 1))
    again = await pipeline.ingest(rt, sms("new topic"))
    assert again.conversation_id != first.conversation_id
    assert (await conversation(rt, first.conversation_id)).status == "resolved"
    assert (await conversation(rt, again.conversation_id)).status == "open"
    assert [e.type for e in again.events] == ["conversation.created", "message.created"]


async def test_auto_reply_never_reopens_a_resolved_conversation(rt: Runtime) -> None:
    first = await pipeline.ingest(rt, mail("question"))
    await set_resolved_ago(rt, first.conversation_id, timedelta(minutes=5))
    ooo = await pipeline.ingest(rt, mail("I am out of office", subject="Re: Order 1001",
                                         flags=frozenset({FLAG_AUTO_REPLY})))
    assert ooo.conversation_id == first.conversation_id
    conv = await conversation(rt, first.conversation_id)
    assert conv.status == "resolved"
    assert conv.unread_count == 0  # a robot's message is not something to read


async def test_auto_reply_long_after_resolution_does_not_open_a_new_conversation(rt: Runtime) -> None:
    first = await pipeline.ingest(rt, sms("question"))
    await set_resolved_ago(rt, first.conversation_id, timedelta(days=30))
    ooo = await pipeline.ingest(rt, sms("auto: away", flags=frozenset({FLAG_AUTO_REPLY})))
    assert ooo.conversation_id == first.conversation_id
    assert (await conversation(rt, first.conversation_id)).status == "resolved"
    assert await count(rt, Conversation) == 1


async def test_new_customer_message_opens_snoozed_conversation(rt: Runtime) -> None:
    first = await pipeline.ingest(rt, sms("hello"))
    await pipeline.set_status(rt, conversation_id=first.conversation_id, status="snoozed",
                              snoozed_until=utcnow() + timedelta(days=1))
    assert (await conversation(rt, first.conversation_id)).status == "snoozed"
    await pipeline.ingest(rt, sms("are you there?"))
    conv = await conversation(rt, first.conversation_id)
    assert conv.status == "open" and conv.snoozed_until is None


async def test_auto_reply_leaves_snoozed_conversation_snoozed(rt: Runtime) -> None:
    first = await pipeline.ingest(rt, sms("hello"))
    await pipeline.set_status(rt, conversation_id=first.conversation_id, status="snoozed",
                              snoozed_until=utcnow() + timedelta(days=1))
    await pipeline.ingest(rt, sms("auto", flags=frozenset({FLAG_AUTO_REPLY})))
    assert (await conversation(rt, first.conversation_id)).status == "snoozed"


async def test_email_reply_threads_by_in_reply_to_and_new_subject_starts_new(rt: Runtime) -> None:
    first = await pipeline.ingest(rt, mail("where is it", pid="<a1@mail.example>"))
    reply = await pipeline.ingest(rt, Inbound(
        channel="email", provider="email", provider_message_id="<a2@mail.example>",
        sender="maria@example.com", sender_kind="email", text="any news?",
        thread=ThreadHints(message_id="<a2@mail.example>", in_reply_to="<a1@mail.example>",
                           references=("<a1@mail.example>",), subject="AW: Order 1001")))
    other = await pipeline.ingest(rt, mail("sizes?", subject="Question about sizes"))
    assert reply.conversation_id == first.conversation_id
    assert other.conversation_id != first.conversation_id


# ---------------------------------------------------------------------------- atomicity


async def test_failure_after_message_is_added_leaves_neither_message_nor_event(rt: Runtime) -> None:
    # A meta key that is an int stores fine as JSON (it becomes "1"), so the message row
    # is inserted and the opt-out's contact.updated and the conversation.created event
    # rows after it; building the message.created event then fails on that key. The
    # whole step must roll back.
    broken = sms("STOP", flags=frozenset({FLAG_OPT_OUT}), meta={1: "int key"})
    with pytest.raises(ValidationError):
        await pipeline.ingest(rt, broken)
    assert await count(rt, Message) == 0
    assert await count(rt, Event) == 0
    assert await count(rt, Conversation) == 0
    assert await count(rt, Identity) == 0

    # The store is healthy afterwards: the same provider id can now be stored.
    fixed = sms("STOP", pid=broken.provider_message_id, flags=frozenset({FLAG_OPT_OUT}))
    result = await pipeline.ingest(rt, fixed)
    assert not result.duplicate
    assert await count(rt, Message) == 1
    assert sorted(e.type for e in await rows(rt, Event)) == [
        "contact.updated", "conversation.created", "message.created"]
    [identity] = await rows(rt, Identity)
    assert identity.opted_out


async def test_message_that_cannot_be_stored_leaves_no_rows(rt: Runtime) -> None:
    first = await pipeline.ingest(rt, sms("hello"))
    before = (await count(rt, Message), await count(rt, Event))
    with pytest.raises(StatementError):
        await pipeline.ingest(rt, sms("x", meta={"unserialisable": object()}))
    assert (await count(rt, Message), await count(rt, Event)) == before
    conv = await conversation(rt, first.conversation_id)
    assert conv.unread_count == 1


async def test_failed_ingest_publishes_nothing(rt: Runtime) -> None:
    sub = rt.hub.subscribe()
    with pytest.raises(StatementError):
        await pipeline.ingest(rt, sms("x", meta={"bad": {1, 2}}))
    assert sub.get_nowait() is None
    await pipeline.ingest(rt, sms("ok"))
    assert [sub.get_nowait().type, sub.get_nowait().type] == [  # type: ignore[union-attr]
        "conversation.created", "message.created"]


# ---------------------------------------------------------------------------- opt-out


async def test_stop_marks_identity_opted_out_and_replies_are_refused(rt: Runtime) -> None:
    result = await pipeline.ingest(rt, sms("STOP", flags=frozenset({FLAG_OPT_OUT})))
    [identity] = await rows(rt, Identity)
    assert identity.opted_out and identity.opted_out_at is not None
    assert "contact.updated" in [e.type for e in result.events]
    with pytest.raises(PolicyRefused) as refused:
        await pipeline.reply(rt, conversation_id=result.conversation_id, text="We miss you")
    assert refused.value.extra == {"reason": "opted_out"}
    with pytest.raises(PolicyRefused):
        await pipeline.reply(rt, conversation_id=result.conversation_id, text="bot", author_kind="bot")
    assert await count(rt, OutboxRow) == 0
    assert [m.direction for m in await rows(rt, Message)] == ["in"]


async def test_opt_out_on_sms_leaves_whatsapp_to_the_same_number_open(rt: Runtime) -> None:
    wa = await pipeline.ingest(rt, sms("hi", channel="whatsapp"))
    text = await pipeline.ingest(rt, sms("STOP", flags=frozenset({FLAG_OPT_OUT})))
    with pytest.raises(PolicyRefused):
        await pipeline.reply(rt, conversation_id=text.conversation_id, text="hello")
    # STOP is an SMS rule: WhatsApp is refused only because no connector is configured.
    with pytest.raises(Conflict) as exc:
        await pipeline.reply(rt, conversation_id=wa.conversation_id, text="hello")
    assert exc.value.extra == {"reason": "channel_not_configured"}


async def test_opted_out_customer_still_gets_private_notes_written(rt: Runtime) -> None:
    result = await pipeline.ingest(rt, sms("STOP", flags=frozenset({FLAG_OPT_OUT})))
    note = await pipeline.reply(rt, conversation_id=result.conversation_id, text="they left", private=True)
    assert note["private"] is True


async def test_start_after_stop_allows_replies_again(rt: Runtime) -> None:
    await pipeline.ingest(rt, sms("STOP", flags=frozenset({FLAG_OPT_OUT})))
    back = await pipeline.ingest(rt, sms("START", flags=frozenset({FLAG_OPT_IN})))
    [identity] = await rows(rt, Identity)
    assert not identity.opted_out
    # No longer refused for the opt-out; only because this runtime has no Twilio connector.
    with pytest.raises(Conflict) as exc:
        await pipeline.reply(rt, conversation_id=back.conversation_id, text="welcome back")
    assert exc.value.extra == {"reason": "channel_not_configured"}


# ---------------------------------------------------------------------------- replies


async def test_private_note_never_gets_an_outbox_row(rt: Runtime) -> None:
    result = await pipeline.ingest(rt, sms("hello"))
    note = await pipeline.reply(rt, conversation_id=result.conversation_id, text="VIP customer",
                                private=True)
    assert note["private"] is True and note["delivery_status"] is None
    assert await count(rt, OutboxRow) == 0


async def test_reply_stores_message_outbox_row_and_event_together(rt: Runtime) -> None:
    # Web chat is always configured, so the reply can be queued.
    inbound = Inbound(channel="webchat", provider="webchat", provider_message_id="v_1:c1",
                      sender="v_1", sender_kind="webchat", recipient="webchat", text="hi")
    result = await pipeline.ingest(rt, inbound)
    sub = rt.hub.subscribe()
    out = await pipeline.reply(rt, conversation_id=result.conversation_id, text="Hello!", agent_id=None)
    assert out["delivery_status"] == "pending" and out["direction"] == "out"
    [row] = await rows(rt, OutboxRow)
    assert row.message_id == out["id"] and row.state == "pending"
    event = sub.get_nowait()
    assert event is not None and event.type == "message.created"
    assert event.payload["message"]["id"] == out["id"]


async def test_reply_to_unknown_conversation_is_not_found(rt: Runtime) -> None:
    with pytest.raises(NotFound):
        await pipeline.reply(rt, conversation_id=999_999, text="hello")


async def test_empty_reply_is_bad_input(rt: Runtime) -> None:
    result = await pipeline.ingest(rt, sms("hello"))
    with pytest.raises(BadInput):
        await pipeline.reply(rt, conversation_id=result.conversation_id, text="   ")


async def test_events_carry_increasing_seqs_replayable_from_the_log(rt: Runtime) -> None:
    for i in range(3):
        await pipeline.ingest(rt, sms(f"m{i}"))
    async with rt.sessions() as session:
        events = await store.events_after(session, seq=0)
        assert [e.seq for e in events] == sorted(e.seq for e in events)
        assert await store.last_seq(session) == events[-1].seq
        later = await store.events_after(session, seq=events[1].seq or 0)
    assert later == events[2:]


async def test_snoozed_conversation_reopens_by_itself_when_its_time_is_up(rt: Runtime) -> None:
    from datetime import timedelta

    from inbox import snooze
    from inbox.types import utcnow

    due = await pipeline.ingest(rt, sms("call me back tomorrow"))
    later = await pipeline.ingest(rt, sms("and this one later", channel="whatsapp"))
    await pipeline.set_status(rt, conversation_id=due.conversation_id, status="snoozed",
                              snoozed_until=utcnow() - timedelta(seconds=1))
    await pipeline.set_status(rt, conversation_id=later.conversation_id, status="snoozed",
                              snoozed_until=utcnow() + timedelta(hours=1))
    assert await snooze.wake_due(rt) == 1
    convs = {c.id: c for c in await rows(rt, Conversation)}
    assert convs[due.conversation_id].status == "open"
    assert convs[due.conversation_id].snoozed_until is None
    assert convs[later.conversation_id].status == "snoozed"
    assert await snooze.wake_due(rt) == 0


async def test_only_one_worker_at_a_time_runs_the_snooze_pass(rt: Runtime) -> None:
    from datetime import timedelta

    from sqlalchemy import text

    from inbox import snooze
    from inbox.types import utcnow

    due = await pipeline.ingest(rt, sms("ping me"))
    await pipeline.set_status(rt, conversation_id=due.conversation_id, status="snoozed",
                              snoozed_until=utcnow() - timedelta(seconds=1))
    if rt.settings.is_sqlite:  # one worker: the pass simply runs
        assert await snooze._wake_due_once_across_workers(rt) == 1
        return
    async with rt.engine.connect() as other_worker:
        await other_worker.execute(text("SELECT pg_advisory_lock(:k)"), {"k": snooze.SNOOZE_LOCK})
        assert await snooze._wake_due_once_across_workers(rt) == 0
        await other_worker.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": snooze.SNOOZE_LOCK})
    assert await snooze._wake_due_once_across_workers(rt) == 1
