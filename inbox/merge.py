"""Merging two contacts that are one person, suggesting likely duplicates, and undoing.

    merge_contacts(rt, source_id=, target_id=, by=)   one transaction: the source's
        identities and conversations move to the target; a `contact_merge` row records
        exactly which ids moved, so that
    undo_merge(rt, merge_id=, by=)                    moves back exactly those
    suggest_duplicates(session, contact_id=)          strong signals only, each with a reason
    live_contact(session, contact_id=)                follows merged_into_id to the contact
                                                      that owns a merged one's addresses

Only strong signals make a suggestion: an order placed with one contact's email and the
other's phone, or the same (non-empty) name. A shared email local part at another
domain ("ana@gmail.com" / "ana@work.example") is not enough: it is a different mailbox.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Column, func, select
from sqlalchemy import update as sa_update
from sqlmodel import Field, SQLModel, col
from sqlmodel.ext.asyncio.session import AsyncSession

from inbox import store
from inbox.db import JSONType, UTCDateTime
from inbox.errors import BadInput, Conflict, NotFound
from inbox.events import EventOut
from inbox.identity import canonical_email
from inbox.models import Contact, Conversation, Identity
from inbox.orders import Order
from inbox.runtime import Runtime
from inbox.schemas import contact_out, conversation_out
from inbox.types import utcnow

MAX_SUGGESTIONS = 5


class ContactMerge(SQLModel, table=True):
    """One merge of `source_id` into `target_id`, with exactly what moved (for undo)."""

    __tablename__ = "contact_merge"
    id: int | None = Field(default=None, primary_key=True)
    source_id: int = Field(foreign_key="contact.id", index=True)
    target_id: int = Field(foreign_key="contact.id", index=True)
    identity_ids: list[int] = Field(default_factory=list, sa_column=Column(JSONType, nullable=False))
    conversation_ids: list[int] = Field(default_factory=list, sa_column=Column(JSONType, nullable=False))
    # The target had no name and took the source's (undo gives it back).
    took_name: bool = False
    merged_by: str | None = Field(default=None, max_length=200)
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    undone_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    undone_by: str | None = Field(default=None, max_length=200)


def merge_out(row: ContactMerge) -> dict[str, Any]:
    """The public, JSON-safe shape of a merge record."""
    return {
        "id": row.id, "source_id": row.source_id, "target_id": row.target_id,
        "identity_ids": list(row.identity_ids), "conversation_ids": list(row.conversation_ids),
        "took_name": row.took_name, "merged_by": row.merged_by,
        "created_at": row.created_at.isoformat(),
        "undone_at": row.undone_at.isoformat() if row.undone_at else None,
        "undone_by": row.undone_by,
    }


async def live_contact(session: AsyncSession, *, contact_id: int) -> Contact | None:
    """The contact itself, or the live one it was (transitively) merged into; None if
    there is no such contact."""
    contact = await session.get(Contact, contact_id)
    seen: set[int] = set()
    while contact is not None and contact.merged_into_id and contact.id not in seen:
        seen.add(contact.id or 0)
        contact = await session.get(Contact, contact.merged_into_id)
    return contact


async def _locked(session: AsyncSession, contact_id: int) -> Contact:
    # FOR UPDATE on PostgreSQL: two merges of the same contacts wait for each other
    # instead of both moving rows (SQLite has one writer anyway and ignores it).
    contact = await session.get(Contact, contact_id, with_for_update=True)
    if contact is None:
        raise NotFound(f"contact {contact_id} does not exist")
    return contact


async def _ids(session: AsyncSession, column: Any, key: Any, contact_id: int) -> list[int]:
    result = await session.exec(select(key).where(column == contact_id).order_by(key))  # type: ignore[call-overload]
    return [int(i) for i in result.scalars().all()]


async def _move(session: AsyncSession, model: Any, ids: list[int], contact_id: int) -> None:
    if ids:
        await session.exec(sa_update(model).where(model.id.in_(ids))  # type: ignore[call-overload]
                           .values(contact_id=contact_id))


async def _events(session: AsyncSession, contacts: list[Contact],
                  conversation_ids: list[int], name: str | None) -> list[EventOut]:
    events = []
    for cid in conversation_ids:
        conv = await session.get(Conversation, cid)
        if conv is not None:
            await session.refresh(conv)  # the bulk UPDATE bypassed the identity map
            events.append(await store.add_event(
                session, type="conversation.updated", conversation_id=cid,
                payload={"conversation": conversation_out(conv, contact_name=name)}))
    for contact in contacts:
        identities = await store.identities_of(session, contact_id=contact.id or 0)
        payload: dict[str, Any] = {"contact": contact_out(contact, identities)}
        if contact.merged_into_id:
            payload["merged_into"] = contact.merged_into_id
        events.append(await store.add_event(session, type="contact.updated",
                                            conversation_id=None, payload=payload))
    return events


async def merge_contacts(rt: Runtime, *, source_id: int, target_id: int,
                         by: str | None = None) -> dict[str, Any]:
    """Merge the contact `source_id` into `target_id` (one person, two profiles).

    One transaction: every identity and conversation of the source moves to the target,
    the source is marked `merged_into_id`, the target takes the source's name if it has
    none, and a `contact_merge` row keeps exactly which ids moved. Events:
    `conversation.updated` per moved conversation, `contact.updated` for both contacts.
    `BadInput` for a merge into itself, `NotFound` for a missing contact, `Conflict` when
    either was already merged away. Returns the merge record.
    """
    if source_id == target_id:
        raise BadInput("a contact cannot be merged into itself", extra={"reason": "same_contact"})
    async with rt.sessions() as session, session.begin():
        # Lock in id order, so merges of A into B and B into A cannot deadlock.
        first, second = sorted((source_id, target_id))
        locked = {first: await _locked(session, first), second: await _locked(session, second)}
        source, target = locked[source_id], locked[target_id]
        for contact in (source, target):
            if contact.merged_into_id:
                raise Conflict(f"contact {contact.id} was already merged into contact "
                               f"{contact.merged_into_id}", extra={"reason": "already_merged",
                                                                   "merged_into": contact.merged_into_id})
        identity_ids = await _ids(session, Identity.contact_id, Identity.id, source_id)
        conversation_ids = await _ids(session, Conversation.contact_id, Conversation.id, source_id)
        await _move(session, Identity, identity_ids, target_id)
        await _move(session, Conversation, conversation_ids, target_id)
        took_name = not (target.name or "").strip() and bool((source.name or "").strip())
        now = utcnow()
        if took_name:
            target.name = source.name
        source.merged_into_id = target_id
        source.updated_at = target.updated_at = now
        record = ContactMerge(source_id=source_id, target_id=target_id, identity_ids=identity_ids,
                              conversation_ids=conversation_ids, took_name=took_name,
                              merged_by=by, created_at=now)
        session.add(record)
        await session.flush()
        events = await _events(session, [target, source], conversation_ids, target.name)
        out = merge_out(record)
    rt.after_commit(events)
    return out


async def undo_merge(rt: Runtime, *, merge_id: int, by: str | None = None) -> dict[str, Any]:
    """Undo one merge: exactly the identities and conversations it moved go back to the
    source (later conversations of the target stay), the source is live again, and the
    target gives back a name it took. `Conflict` when the merge was already undone, or
    when the target has since been merged on (undo that merge first). Returns the
    record, now with `undone_at`.
    """
    async with rt.sessions() as session, session.begin():
        record = await session.get(ContactMerge, merge_id, with_for_update=True)
        if record is None:
            raise NotFound(f"merge {merge_id} does not exist")
        if record.undone_at is not None:
            raise Conflict(f"merge {merge_id} was already undone", extra={"reason": "already_undone"})
        first, second = sorted((record.source_id, record.target_id))
        locked = {first: await _locked(session, first), second: await _locked(session, second)}
        source, target = locked[record.source_id], locked[record.target_id]
        if target.merged_into_id:
            raise Conflict(f"contact {target.id} has since been merged into contact "
                           f"{target.merged_into_id}: undo that merge first",
                           extra={"reason": "target_merged_on"})
        if source.merged_into_id != target.id:
            raise Conflict(f"contact {source.id} is no longer merged into contact {target.id}",
                           extra={"reason": "not_merged"})
        await _move(session, Identity, list(record.identity_ids), source.id or 0)
        await _move(session, Conversation, list(record.conversation_ids), source.id or 0)
        now = utcnow()
        if record.took_name and target.name == source.name:
            target.name = None
        source.merged_into_id = None
        source.updated_at = target.updated_at = now
        record.undone_at, record.undone_by = now, by
        await session.flush()
        events = await _events(session, [source, target], list(record.conversation_ids), source.name)
        out = merge_out(record)
    rt.after_commit(events)
    return out


async def suggest_duplicates(session: AsyncSession, *, contact_id: int) -> list[dict[str, Any]]:
    """Other live contacts that are probably the same person as `contact_id`, strongest
    first: `[{"contact": {...with identities}, "reason": "..."}]`.

    Signals: an order whose customer_email is one contact's identity and whose
    customer_phone is the other's; an email typed in the web chat (`claimed_email`) that
    is the other's identity; the same non-empty name, case-insensitively.
    """
    contact = await live_contact(session, contact_id=contact_id)
    if contact is None:
        raise NotFound(f"contact {contact_id} does not exist")
    me = contact.id or 0
    identities = await store.identities_of(session, contact_id=me)
    emails = [i.value for i in identities if i.kind == "email"]
    phones = [i.value for i in identities if i.kind == "phone"]
    found: dict[int, str] = {}

    async def owner(kind: str, value: str) -> Contact | None:
        identity = await store.find_identity(session, kind=kind, value=value)
        if identity is None:
            return None
        other = await live_contact(session, contact_id=identity.contact_id)
        return other if other is not None and other.id != me else None

    for mine, theirs, key in ((emails, "phone", "customer_email"), (phones, "email", "customer_phone")):
        if not mine:
            continue
        other_key = "customer_phone" if theirs == "phone" else "customer_email"
        result = await session.exec(  # type: ignore[call-overload]
            select(Order).where(col(getattr(Order, key)).in_(mine),
                                col(getattr(Order, other_key)).is_not(None))
            .order_by(col(Order.id).desc()).limit(50))
        for order in result.scalars().all():
            other = await owner(theirs, getattr(order, other_key))
            if other is not None and other.id not in found:
                found[other.id or 0] = (f"order {order.number} was placed with this "
                                        f"{'email' if theirs == 'phone' else 'phone'} and their {theirs}")
    if contact.claimed_email:
        other = await owner("email", canonical_email(contact.claimed_email))
        if other is not None:
            found.setdefault(other.id or 0, f"typed {contact.claimed_email} in the chat, their "
                                            "email (not verified: check before merging)")
    name = " ".join((contact.name or "").split()).casefold()
    if name:
        result = await session.exec(  # type: ignore[call-overload]
            select(Contact).where(func.lower(func.trim(col(Contact.name))) == name,
                                  col(Contact.merged_into_id).is_(None), col(Contact.id) != me)
            .order_by(col(Contact.id).desc()).limit(MAX_SUGGESTIONS))
        for other in result.scalars().all():
            # lower() in SQL is ASCII-only on SQLite; check the casefolded name exactly.
            if " ".join((other.name or "").split()).casefold() == name:
                found.setdefault(other.id or 0, "same name")
    out = []
    for other_id, reason in list(found.items())[:MAX_SUGGESTIONS]:
        other = await session.get(Contact, other_id)
        if other is None:
            continue
        out.append({"contact": contact_out(other, await store.identities_of(session, contact_id=other_id)),
                    "reason": reason})
    return out
