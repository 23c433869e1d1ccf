"""Conversation state changes: assign, status, take over, hand over, split, read,
and a web-chat visitor's identity. Each is one transaction with its events."""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Any

from sqlalchemy import update as sa_update
from sqlmodel.ext.asyncio.session import AsyncSession

from inbox import ingest_sql as sql
from inbox import replies, sqlrun, store
from inbox.errors import BadInput, Conflict, InboxError, NotFound
from inbox.events import EventOut, view_fields
from inbox.identity import canonical
from inbox.ingest import clean_name, contact_event, live_contact
from inbox.models import (
    Agent,
    Contact,
    Conversation,
    Identity,
    Message,
)
from inbox.runtime import Runtime
from inbox.schemas import conversation_out, message_out
from inbox.sqlrun import Query
from inbox.types import (
    utcnow,
)

log = logging.getLogger(__name__)


STATUSES = ("open", "pending", "snoozed", "resolved")


# ---------------------------------------------------------------------------- state changes


async def _change(
    rt: Runtime, conversation_id: int, mutate: Any, *, system_note: str | None = None,
) -> dict[str, Any]:
    async with rt.sessions() as session, session.begin():
        conv = await session.get(Conversation, conversation_id)
        if conv is None:
            raise NotFound(f"conversation {conversation_id} does not exist")
        previous = view_fields(conv)
        mutate(conv)
        await session.flush()
        contact = await session.get(Contact, conv.contact_id)
        summary, events = await _changed(session, conv, previous,
                                         contact.name if contact else None, system_note)
    rt.after_commit(events)
    return summary


async def _changed(
    session: AsyncSession, conv: Conversation, previous: dict[str, Any],
    contact_name: str | None, system_note: str | None,
) -> tuple[dict[str, Any], list[EventOut]]:
    """The note (if any) and the events of a change already flushed: the summary and the
    events to publish after commit."""
    summary = conversation_out(conv, contact_name=contact_name)
    items: list[tuple[str, int | None, dict[str, Any]]] = []
    if system_note:
        note = Message(conversation_id=conv.id or 0, channel=conv.channel, direction="out",
                       author_kind="system", text=system_note, private=True)
        session.add(note)
        await session.flush()
        items.append(("message.created", conv.id,
                      {"message": message_out(note), "conversation": summary,
                       "previous": previous}))
    items.append(("conversation.updated", conv.id, {"conversation": summary, "previous": previous}))
    return summary, await store.add_events(session, items)  # one INSERT for both


async def assign(
    rt: Runtime, *, conversation_id: int, agent_id: int | None, by: str | None = None
) -> dict[str, Any]:
    """Give the conversation to an agent (None: unassign). Assigning hands it to humans."""
    async with rt.sessions() as session:
        if agent_id is not None:
            agent = await session.get(Agent, agent_id)
            if agent is None or not agent.is_active:
                raise NotFound(f"agent {agent_id} does not exist")
            target = agent.name
        else:
            target = None

    def mutate(conv: Conversation) -> None:
        conv.assignee_id = agent_id
        if agent_id is not None:
            conv.handled_by = "human"

    note = f"{by or 'System'} assigned this to {target}" if target else f"{by or 'System'} unassigned this"
    return await _change(rt, conversation_id, mutate, system_note=note)


async def set_status(
    rt: Runtime,
    *,
    conversation_id: int,
    status: str,
    snoozed_until: datetime | None = None,
    by: str | None = None,
) -> dict[str, Any]:
    """Move the conversation to open, pending, snoozed (until a time) or resolved.

    Resolving hands the conversation back to the bot for the customer's next question.
    """
    if status not in STATUSES:
        raise BadInput(f"status must be one of {', '.join(STATUSES)}")
    if status == "snoozed" and snoozed_until is None:
        raise BadInput("snoozing needs snoozed_until")

    def mutate(conv: Conversation) -> None:
        conv.status = status
        conv.snoozed_until = snoozed_until if status == "snoozed" else None
        if status == "resolved":
            conv.resolved_at = utcnow()
            conv.handled_by = "bot"
            conv.bot_answers = 0
            conv.unread_count = 0
        else:
            conv.resolved_at = None

    return await _change(rt, conversation_id, mutate,
                         system_note=f"{by or 'System'} set the status to {status}")


async def take_over(rt: Runtime, *, conversation_id: int, agent_id: int, by: str | None = None) -> dict[str, Any]:
    """A human takes the conversation from the bot (and assigns it to themself)."""

    def mutate(conv: Conversation) -> None:
        conv.handled_by = "human"
        if conv.assignee_id is None:
            conv.assignee_id = agent_id

    return await _change(rt, conversation_id, mutate,
                         system_note=f"{by or 'An agent'} took over from the bot")


async def hand_over(
    rt: Runtime, *, conversation_id: int, reason: str, known: Conversation | None = None,
    also: sqlrun.Plan[Any] | None = None, acknowledge: str | None = None,
    acknowledge_meta: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The bot gives the conversation to the human queue, saying why (a private note):
    one transaction of prebuilt statements (`inbox.sqlrun`; on SQLite one hop).

    `known` is the conversation as the caller read it moments ago: while its status and
    owner are still those, one guarded UPDATE ... RETURNING changes and re-reads it (with
    the contact's name); otherwise (or without `known`) it is read first, locked on
    PostgreSQL. `also` is a plan of the caller's own statements (the FAQ responder's
    unanswered question), run in the same transaction after the change: they commit with
    the note or not at all. `acknowledge` is a message for the customer sent by the bot
    with it (with `acknowledge_meta`), stored with its outbox row like any bot reply;
    when the channel refuses it (opted out, not configured) the hand-over goes on
    without it, and says so in the log. Returns the conversation as it ends up.
    """
    plan = _hand_over_plan(
        rt, conversation_id=conversation_id, note=f"Handed to a person: {reason}",
        known=(known.status, known.handled_by) if known is not None else None, also=also,
        acknowledge=acknowledge, acknowledge_meta=acknowledge_meta,
        dialect=rt.engine.dialect.name)
    summary, events, queued = await sqlrun.run(rt.engine, plan)
    rt.after_commit(events, outbox=queued)
    return summary


# Attempts at the guarded UPDATE: the caller's view, then the row as read (and locked).
_HAND_OVER_ATTEMPTS = 2


def _hand_over_plan(
    rt: Runtime, *, conversation_id: int, note: str, known: tuple[str, str] | None,
    also: sqlrun.Plan[Any] | None, acknowledge: str | None,
    acknowledge_meta: dict[str, Any] | None, dialect: str,
) -> sqlrun.Plan[tuple[dict[str, Any], list[EventOut], bool]]:
    """`hand_over`'s transaction: (the conversation's summary, its events, whether an
    outbox row was written)."""
    for _attempt in range(_HAND_OVER_ATTEMPTS):
        if known is None:
            rows = yield Query(sql.conversation_state(dialect), {"conversation_id": conversation_id})
            if not rows:
                raise NotFound(f"conversation {conversation_id} does not exist")
            known = (rows[0].status, rows[0].handled_by)
        old_status, old_handled_by = known
        changed = yield Query(sql.hand_over_conversation(), {
            "conversation_id": conversation_id, "old_status": old_status,
            "old_handled_by": old_handled_by,
            "new_status": "open" if old_status == "resolved" else old_status})
        if changed:
            break
        known = None  # changed since it was read: read it again
    else:
        raise Conflict("the conversation kept changing while it was handed over; retry")
    conv = changed[0]
    # The guard matched, so the view fields before the change were these (the UPDATE
    # leaves the assignee and channel alone).
    previous = {**view_fields(conv), "status": old_status, "handled_by": old_handled_by}
    if also is not None:
        yield from also
    now = utcnow()
    summary = conversation_out(conv, contact_name=conv.contact_name)
    note_message = yield from replies.insert_outbound(
        conv, author_kind="system", text=note, private=True, meta={}, now=now, dialect=dialect)
    items: list[tuple[str, int | None, dict[str, Any]]] = [
        ("message.created", conv.id, {"message": message_out(note_message),
                                      "conversation": summary, "previous": previous}),
        ("conversation.updated", conv.id, {"conversation": summary, "previous": previous}),
    ]
    queued = False
    if acknowledge is not None:
        try:
            replies.check_can_send(rt, conv, opted_out=bool(conv.opted_out),
                                   address=conv.customer_address)
        except InboxError as exc:
            log.info("hand-over acknowledgement refused in %s: %s", conv.id, exc.detail)
        else:
            # As `replies.bot_answer` stores a bot's answer: one more bot answer and the
            # activity time, the message with its outbox row, its event.
            (conv,) = yield Query(sql.count_bot_message(), {"conversation_id": conv.id, "now": now})
            item = yield from replies.bot_message(
                conv, text=acknowledge, html=None, meta=dict(acknowledge_meta or {}), now=now,
                dialect=dialect)
            summary = item[2]["conversation"]
            items.append(item)
            queued = True
    events = yield from sql.insert_events(items, dialect=dialect)
    return summary, events, queued


async def split_message(rt: Runtime, *, message_id: int, by: str | None = None) -> dict[str, Any]:
    """Move one customer message into a new conversation of its own (same contact,
    identity, channel and addresses): an agent saw a new topic inside an old thread.

    One transaction: the new conversation, the moved message, a private note in each
    conversation, and the events (conversation.created, message.updated for the moved
    message, conversation.updated for the old one). Later email replies to that message
    follow it, since its Message-ID moves with it. Returns the new conversation.
    """
    async with rt.sessions() as session, session.begin():
        message = await session.get(Message, message_id)
        if message is None:
            raise NotFound(f"message {message_id} does not exist")
        if message.direction != "in":
            raise BadInput("only a customer's message can be split off into a new conversation")
        old = await session.get(Conversation, message.conversation_id)
        if old is None:
            raise NotFound(f"conversation {message.conversation_id} does not exist")
        if len(await store.list_messages(session, conversation_id=old.id or 0, limit=2,
                                         include_private=False)) < 2:
            raise Conflict("this is the conversation's only message: nothing to split off",
                           extra={"reason": "only_message"})
        now = utcnow()
        subject = message.meta.get("subject") if isinstance(message.meta.get("subject"), str) else None
        conv = Conversation(
            contact_id=old.contact_id, identity_id=old.identity_id, channel=old.channel,
            provider=old.provider, thread_key=old.thread_key, our_address=old.our_address,
            customer_address=old.customer_address, subject=(subject or old.subject or None),
            last_activity_at=now, last_customer_at=message.created_at, unread_count=1,
            created_at=now,
        )
        session.add(conv)
        await session.flush()
        message.conversation_id = conv.id or 0
        who = by or "An agent"
        notes = [
            Message(conversation_id=conv.id or 0, channel=conv.channel, direction="out",
                    author_kind="system", private=True, created_at=now,
                    text=f"{who} split this off from conversation #{old.id}"),
            Message(conversation_id=old.id or 0, channel=old.channel, direction="out",
                    author_kind="system", private=True, created_at=now,
                    text=f"{who} moved a message to conversation #{conv.id}"),
        ]
        session.add_all(notes)
        old.last_activity_at = now
        await session.flush()
        contact = await session.get(Contact, conv.contact_id)
        name = contact.name if contact else None
        summary = conversation_out(conv, contact_name=name, last_message=message)
        events = [
            await store.add_event(session, type="conversation.created", conversation_id=conv.id,
                                  payload={"conversation": summary}),
            await store.add_event(session, type="message.updated", conversation_id=conv.id,
                                  payload={"message": message_out(message),
                                           "moved_from": old.id, "conversation": summary}),
        ]
        for note in notes:
            events.append(await store.add_event(
                session, type="message.created", conversation_id=note.conversation_id,
                payload={"message": message_out(note)}))
        events.append(await store.add_event(
            session, type="conversation.updated", conversation_id=old.id,
            payload={"conversation": conversation_out(old, contact_name=name)}))
    rt.after_commit(events)
    return summary


async def mark_read(rt: Runtime, *, conversation_id: int) -> None:
    """Clear the unread count (an agent opened the conversation)."""
    async with rt.sessions() as session, session.begin():
        conv = await session.get(Conversation, conversation_id)
        if conv is None:
            raise NotFound(f"conversation {conversation_id} does not exist")
        if conv.unread_count == 0:
            return
        conv.unread_count = 0
        await session.flush()
        summary = conversation_out(conv)
        event = await store.add_event(session, type="conversation.updated",
                                      conversation_id=conversation_id,
                                      payload={"conversation": summary})
    rt.after_commit([event])


# ---------------------------------------------------------------------------- identities


async def identify_visitor(
    rt: Runtime, *, visitor: str, email: str | None, name: str | None, verified: bool = False
) -> int | None:
    """A web-chat visitor leaves an email (and/or a name) so a late reply reaches them.

    Unverified (anyone can type any address in the widget), the email is only a claim
    on the visitor's own contact (`Contact.claimed_email`): late replies go there, but
    it is no identity, so it links no orders (the FAQ bot's personal answers read
    those) and joins no other contact. Verified (the shop's site signed it, see
    `web.routes.realtime`), it is an email identity: it joins the visitor's contact, and
    if that email already belongs to another contact, the visitor's identity and
    conversations move to that contact (the person is one person). A visitor who has
    not written yet gets a contact now. Returns the contact id (None when there was
    nothing to record).
    """
    address = canonical("email", email) if email else None
    async with rt.sessions() as session, session.begin():
        identity = await store.find_identity(session, kind="webchat", value=visitor)
        if identity is None:
            if not address and not clean_name(name):
                return None
            # Left before the first message: keep it (it was silently dropped), so the
            # visitor's first message joins this contact by its webchat identity.
            _contact, identity = await store.create_contact_with_identity(
                session, kind="webchat", value=visitor, raw=visitor, name=None)
        contact = await live_contact(session, identity.contact_id)
        cleaned = clean_name(name)
        if cleaned and not contact.name:
            contact.name = cleaned
        if address and not verified:
            contact.claimed_email = (email or "").strip()[:320]  # as typed, checked above
        elif address:
            existing = await store.find_identity(session, kind="email", value=address)
            if existing is None:
                session.add(Identity(contact_id=contact.id or 0, kind="email", value=address, raw=email))
            elif existing.contact_id != contact.id:
                owner = await live_contact(session, existing.contact_id)
                await session.exec(sa_update(Identity).where(Identity.contact_id == contact.id)  # type: ignore[call-overload]
                                   .values(contact_id=owner.id))
                await session.exec(sa_update(Conversation).where(Conversation.contact_id == contact.id)  # type: ignore[call-overload]
                                   .values(contact_id=owner.id))
                contact.merged_into_id = owner.id
                if not owner.name and contact.name:
                    owner.name = contact.name
                contact = owner
        contact.updated_at = utcnow()
        await session.flush()
        event = await contact_event(session, contact)
    rt.after_commit([event])
    return contact.id


