"""Canned responses and contact merges on a real database (SQLite and PostgreSQL).

Merges go through `inbox.merge`; the database is read back with plain queries, so
"undo restores exactly" means the rows, not what the functions say about them.
"""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import select

from inbox import pipeline
from inbox.canned import create_canned, delete_canned, list_canned, parse_canned, update_canned
from inbox.errors import BadInput, Conflict, NotFound
from inbox.merge import merge_contacts, suggest_duplicates, undo_merge
from inbox.models import Contact, Conversation, Event, Identity
from inbox.orders import parse_order, upsert_order
from inbox.runtime import Runtime
from inbox.types import Inbound, ThreadHints

_counter = 0


def sms(*, sender: str, name: str | None = None, text: str = "hello") -> Inbound:
    global _counter
    _counter += 1
    return Inbound(channel="sms", provider="twilio", provider_message_id=f"SMmerge{_counter}",
                   sender=sender, sender_kind="phone", recipient="+15550009999", text=text,
                   display_name=name)


def mail(*, sender: str, name: str | None = None, subject: str = "Order question") -> Inbound:
    global _counter
    _counter += 1
    mid = f"<merge{_counter}@mail.example>"
    return Inbound(channel="email", provider="email", provider_message_id=mid, sender=sender,
                   sender_kind="email", recipient="support@shop.example", text="hello",
                   display_name=name, thread=ThreadHints(message_id=mid, subject=subject))


async def state(rt: Runtime) -> dict[str, Any]:
    """Who owns which identity and conversation, and each contact's name and merge link."""
    async with rt.sessions() as session:
        idents = (await session.exec(select(Identity.id, Identity.contact_id))).all()  # type: ignore[call-overload]
        convs = (await session.exec(select(Conversation.id, Conversation.contact_id))).all()  # type: ignore[call-overload]
        contacts = (await session.exec(select(Contact.id, Contact.name, Contact.merged_into_id))).all()  # type: ignore[call-overload]
    return {"identities": dict(idents), "conversations": dict(convs),
            "contacts": {cid: (name, into) for cid, name, into in contacts}}


async def events_of(rt: Runtime, after: int) -> list[tuple[str, int | None]]:
    async with rt.sessions() as session:
        result = await session.exec(select(Event).where(Event.seq > after).order_by(Event.seq))  # type: ignore[call-overload,operator]
        return [(e.type, e.conversation_id) for e in result.scalars().all()]


async def last_seq(rt: Runtime) -> int:
    async with rt.sessions() as session:
        from inbox import store
        return await store.last_seq(session)


# ------------------------------------------------------------------------------ merge


async def test_merge_moves_identities_and_conversations_and_undo_restores_exactly(rt: Runtime) -> None:
    phone = await pipeline.ingest(rt, sms(sender="+15550102030", name="Dana Fox"))
    other_sms = await pipeline.ingest(rt, sms(sender="+15550102030", text="again"))
    email = await pipeline.ingest(rt, mail(sender="dana@mail.example"))  # no name on this one
    source, target = phone.contact_id, email.contact_id
    before = await state(rt)
    seq = await last_seq(rt)

    record = await merge_contacts(rt, source_id=source, target_id=target, by="Sam")

    after = await state(rt)
    assert record["source_id"] == source and record["target_id"] == target
    assert record["took_name"] is True and record["merged_by"] == "Sam"
    moved_idents = [i for i, c in before["identities"].items() if c == source]
    assert sorted(record["identity_ids"]) == sorted(moved_idents) and moved_idents
    assert record["conversation_ids"] == [phone.conversation_id]  # both SMS share one thread
    assert set(after["identities"].values()) == {target}
    assert set(after["conversations"].values()) == {target}
    assert after["contacts"][source] == ("Dana Fox", target)
    assert after["contacts"][target] == ("Dana Fox", None)  # took the source's name
    kinds = await events_of(rt, seq)
    assert ("conversation.updated", phone.conversation_id) in kinds
    assert kinds.count(("contact.updated", None)) == 2
    assert other_sms.conversation_id == phone.conversation_id

    # A later conversation of the target is not part of the merge and stays on undo.
    later = await pipeline.ingest(rt, mail(sender="dana@mail.example", subject="New topic"))
    undone = await undo_merge(rt, merge_id=record["id"], by="Sam")
    assert undone["undone_at"] is not None and undone["undone_by"] == "Sam"
    restored = await state(rt)
    assert restored["identities"] == before["identities"]
    assert {k: v for k, v in restored["conversations"].items() if k != later.conversation_id} \
        == before["conversations"]
    assert restored["conversations"][later.conversation_id] == target
    assert restored["contacts"][source] == ("Dana Fox", None)
    assert restored["contacts"][target] == (None, None)  # the name it took goes back

    with pytest.raises(Conflict) as exc:
        await undo_merge(rt, merge_id=record["id"], by="Sam")
    assert exc.value.status == 409


async def test_merge_refuses_self_missing_and_already_merged_contacts(rt: Runtime) -> None:
    a = (await pipeline.ingest(rt, sms(sender="+15550102031"))).contact_id
    b = (await pipeline.ingest(rt, sms(sender="+15550102032"))).contact_id
    c = (await pipeline.ingest(rt, sms(sender="+15550102033"))).contact_id
    with pytest.raises(BadInput) as exc:
        await merge_contacts(rt, source_id=a, target_id=a, by="Sam")
    assert exc.value.status == 400
    with pytest.raises(NotFound):
        await merge_contacts(rt, source_id=a, target_id=999_999, by="Sam")
    await merge_contacts(rt, source_id=a, target_id=b, by="Sam")
    with pytest.raises(Conflict):
        await merge_contacts(rt, source_id=a, target_id=c, by="Sam")  # a is gone
    with pytest.raises(Conflict):
        await merge_contacts(rt, source_id=c, target_id=a, by="Sam")  # into a merged one
    with pytest.raises(NotFound):
        await undo_merge(rt, merge_id=999_999, by="Sam")


async def test_messages_to_a_merged_contacts_number_land_on_the_target(rt: Runtime) -> None:
    a = await pipeline.ingest(rt, sms(sender="+15550102034"))
    b = await pipeline.ingest(rt, mail(sender="lee@mail.example"))
    await merge_contacts(rt, source_id=a.contact_id, target_id=b.contact_id, by=None)
    again = await pipeline.ingest(rt, sms(sender="+15550102034", text="still me"))
    assert again.contact_id == b.contact_id
    assert again.conversation_id == a.conversation_id


# ------------------------------------------------------------------------------ suggestions


async def test_suggests_the_contact_whose_phone_is_on_an_order_placed_with_this_email(rt: Runtime) -> None:
    by_mail = await pipeline.ingest(rt, mail(sender="ana@mail.example", name="Ana"))
    by_phone = await pipeline.ingest(rt, sms(sender="+15550102035", name="A. Lopez"))
    stranger = await pipeline.ingest(rt, mail(sender="ana@work.example", name="Ana Work"))
    await upsert_order(rt, parse_order({"number": "#1001", "customer_email": "ana@mail.example",
                                        "customer_phone": "+1 555 010 2035"}, external_id="o1"))
    async with rt.sessions() as session:
        from_mail = await suggest_duplicates(session, contact_id=by_mail.contact_id)
        from_phone = await suggest_duplicates(session, contact_id=by_phone.contact_id)
        from_stranger = await suggest_duplicates(session, contact_id=stranger.contact_id)
    assert [s["contact"]["id"] for s in from_mail] == [by_phone.contact_id]
    assert "#1001" in from_mail[0]["reason"]
    assert [s["contact"]["id"] for s in from_phone] == [by_mail.contact_id]
    # Same local part at another domain is a different mailbox: no suggestion.
    assert from_stranger == []


async def test_suggests_contacts_with_the_same_name_ignoring_case_but_not_merged_ones(rt: Runtime) -> None:
    one = await pipeline.ingest(rt, sms(sender="+15550102036", name="Maria Garcia"))
    two = await pipeline.ingest(rt, mail(sender="mg@mail.example", name="maria garcia"))
    three = await pipeline.ingest(rt, mail(sender="mg2@mail.example", name="MARIA GARCIA"))
    await pipeline.ingest(rt, mail(sender="x@mail.example", name="Maria Garcia-Lopez"))
    await pipeline.ingest(rt, sms(sender="+15550102037"))  # no name: never a suggestion
    async with rt.sessions() as session:
        found = await suggest_duplicates(session, contact_id=one.contact_id)
    assert {s["contact"]["id"] for s in found} == {two.contact_id, three.contact_id}
    assert {s["reason"] for s in found} == {"same name"}
    await merge_contacts(rt, source_id=three.contact_id, target_id=two.contact_id, by="Sam")
    nameless_id = (await pipeline.ingest(rt, sms(sender="+15550102038"))).contact_id
    async with rt.sessions() as session:
        found = await suggest_duplicates(session, contact_id=one.contact_id)
        nameless = await suggest_duplicates(session, contact_id=nameless_id)
    assert [s["contact"]["id"] for s in found] == [two.contact_id]
    assert nameless == []


# ------------------------------------------------------------------------------ canned


async def test_canned_responses_are_created_filtered_updated_and_deleted(rt: Runtime) -> None:
    ship = await create_canned(rt, **parse_canned({"shortcut": "/Shipping", "title": "Shipping times",
                                                   "text": "We ship within 2 days."}))
    await create_canned(rt, **parse_canned({"shortcut": "refund", "text": "Refunds take 5 days; shipping is refunded too."}))
    assert ship["shortcut"] == "shipping"
    async with rt.sessions() as session:
        assert [r.shortcut for r in await list_canned(session, q="ship")] == ["shipping", "refund"]
        assert [r.shortcut for r in await list_canned(session, q="REFUND")] == ["refund"]
        assert [r.title for r in await list_canned(session, q="refund")] == ["refund"]  # title defaults
    with pytest.raises(Conflict):
        await create_canned(rt, **parse_canned({"shortcut": "SHIPPING", "text": "again"}))
    updated = await update_canned(rt, canned_id=ship["id"], fields=parse_canned({"text": "2-3 days."}, partial=True))
    assert updated["text"] == "2-3 days." and updated["shortcut"] == "shipping"
    assert updated["title"] == "Shipping times"
    cleared = await update_canned(rt, canned_id=ship["id"], fields=parse_canned({"title": " "}, partial=True))
    assert cleared["title"] == "shipping"  # a cleared title falls back to the shortcut
    await delete_canned(rt, canned_id=ship["id"])
    with pytest.raises(NotFound):
        await delete_canned(rt, canned_id=ship["id"])


def test_parse_canned_lists_every_reason() -> None:
    with pytest.raises(BadInput) as exc:
        parse_canned({"shortcut": "two words", "text": " "})
    reasons = exc.value.extra["reasons"]
    assert len(reasons) == 2 and "shortcut" in reasons[0] and "text" in reasons[1]
