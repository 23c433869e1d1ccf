"""The pipeline steps: each is one transaction that writes state, its events and its
outbox rows together, then publishes and dispatches only after commit.

    ingest(Inbound)          a customer's message arrives (any channel)
    record_status(Status)    a provider reports on one of our messages
    reply(...)               an agent, the bot or the system answers
    assign / set_status / take_over / mark_read
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import or_
from sqlalchemy import update as sa_update
from sqlalchemy.exc import IntegrityError
from sqlmodel.ext.asyncio.session import AsyncSession

from inbox import store
from inbox.errors import BadInput, Conflict, NotFound, PolicyRefused
from inbox.events import EventOut
from inbox.identity import canonical
from inbox.models import Agent, Contact, Conversation, Identity, Message, OutboxRow, StoredFile
from inbox.runtime import Runtime
from inbox.schemas import conversation_out, message_out
from inbox.threading import ConversationView, follow_up, subject_continues
from inbox.types import (
    FLAG_HELP,
    FLAG_OPT_IN,
    FLAG_OPT_OUT,
    MACHINE_FLAGS,
    Attachment,
    Inbound,
    StatusUpdate,
    TemplateRef,
    utcnow,
)

log = logging.getLogger(__name__)

STATUSES = ("open", "pending", "snoozed", "resolved")
# Progress order of delivery states: a late "delivered" never overrides "read".
_PROGRESS = {"pending": 0, "queued": 1, "sent": 2, "delivered": 3, "read": 4}
_FINAL_FAILURES = ("failed", "undelivered")


@dataclass(slots=True)
class IngestResult:
    """What `ingest` did: the stored message, and whether it was new."""

    message_id: int
    conversation_id: int
    contact_id: int
    duplicate: bool
    events: list[EventOut] = field(default_factory=list)


# ---------------------------------------------------------------------------- ingest


async def ingest(rt: Runtime, inbound: Inbound) -> IngestResult:
    """Store a customer's message exactly once and tell everyone after commit.

    Resolves the contact by canonical identity, picks or opens the conversation,
    stores the message idempotently (same channel + provider id: nothing new, no event),
    appends the events, commits; then publishes, runs responders, answers HELP.
    Raises `BadInput` for an inbound whose sender cannot be read.
    """
    value = canonical(inbound.sender_kind, inbound.sender, default_region=rt.settings.default_region)
    for attempt in range(3):
        try:
            result = await _ingest_once(rt, inbound, value)
            break
        except IntegrityError:
            # A concurrent delivery of the same webhook (or the same new contact) won
            # the race; the next attempt finds what it stored.
            if attempt == 2:
                raise
    else:  # pragma: no cover
        raise AssertionError("unreachable")
    if not result.duplicate:
        rt.after_commit(result.events)
        if FLAG_HELP in inbound.flags and rt.settings.help_text:
            rt.spawn(_answer_help(rt, result.conversation_id))
    return result


async def _answer_help(rt: Runtime, conversation_id: int) -> None:
    try:
        await reply(rt, conversation_id=conversation_id, text=rt.settings.help_text,
                    author_kind="system")
    except Exception:
        log.exception("could not answer HELP in conversation %s", conversation_id)


async def _ingest_once(rt: Runtime, inbound: Inbound, value: str) -> IngestResult:
    async with rt.sessions() as session, session.begin():
        existing = await store.message_by_provider_id(
            session, channel=inbound.channel, provider_message_id=inbound.provider_message_id
        )
        if existing is not None:
            conv = await session.get(Conversation, existing.conversation_id)
            return IngestResult(existing.id or 0, existing.conversation_id,
                                conv.contact_id if conv else 0, duplicate=True)
        contact, identity = await _resolve_contact(session, inbound, value)
        now = utcnow()
        machine = bool(inbound.flags & MACHINE_FLAGS)
        events: list[EventOut] = []
        # The contact event is written last with the others: add_event takes the event
        # lock (PostgreSQL), and taking it before the conversation row update deadlocked
        # with a concurrent message of the same customer holding that row.
        contact_changed = False
        if FLAG_OPT_OUT in inbound.flags and not identity.opted_out:
            identity.opted_out, identity.opted_out_at = True, now
            contact_changed = True
        elif FLAG_OPT_IN in inbound.flags and identity.opted_out:
            identity.opted_out, identity.opted_out_at = False, None
            contact_changed = True

        conv, created = await _pick_conversation(
            rt, session, inbound, contact=contact, identity=identity, now=now, machine=machine
        )
        message = Message(
            conversation_id=conv.id or 0,
            channel=inbound.channel,
            direction="in",
            author_kind="customer",
            text=_no_nul(inbound.text) or "",
            html=_no_nul(inbound.html),
            attachments=[],
            provider_message_id=inbound.provider_message_id,
            thread_message_id=inbound.thread.message_id,
            flags=sorted(inbound.flags),
            meta=_meta(inbound),
            raw=inbound.raw,
            created_at=now,
        )
        session.add(message)
        await session.flush()
        message.attachments = await _store_attachments(session, message.id or 0, inbound.attachments)

        conv.last_activity_at = now
        if not machine:
            conv.last_customer_at = now
            conv.unread_count += 1
        if conv.status == "snoozed" and not machine:
            conv.status, conv.snoozed_until = "open", None
        if conv.subject is None and inbound.thread.subject:
            conv.subject = _no_nul(inbound.thread.subject[:500])
        await session.flush()
        summary = conversation_out(conv, contact_name=contact.name, last_message=message)
        if contact_changed:
            events.append(await _contact_event(session, contact))
        if created:
            events.append(await store.add_event(
                session, type="conversation.created", conversation_id=conv.id,
                payload={"conversation": summary}))
        events.append(await store.add_event(
            session, type="message.created", conversation_id=conv.id,
            payload={"message": message_out(message), "conversation": summary}))
        return IngestResult(message.id or 0, conv.id or 0, contact.id or 0, False, events)


async def _resolve_contact(
    session: AsyncSession, inbound: Inbound, value: str
) -> tuple[Contact, Identity]:
    identity = await store.find_identity(session, kind=inbound.sender_kind, value=value)
    name = _clean_name(inbound.display_name)
    if name and _ADDRESS_AS_NAME.match(name):
        # "alice@example.com <bob@example.com>": an address posing as a name (a spoofing
        # trick, or a client echoing the address) would show agents the wrong person.
        name = None
    if identity is None:
        contact, identity = await store.create_contact_with_identity(
            session, kind=inbound.sender_kind, value=value, raw=inbound.sender, name=name)
        return contact, identity
    contact = await _live_contact(session, identity.contact_id)
    if name and not contact.name:
        contact.name, contact.updated_at = name, utcnow()
    return contact, identity


async def _live_contact(session: AsyncSession, contact_id: int) -> Contact:
    """Follow merges to the contact that now owns this one's identities."""
    contact = await session.get(Contact, contact_id)
    seen = set()
    while contact is not None and contact.merged_into_id and contact.id not in seen:
        seen.add(contact.id)
        contact = await session.get(Contact, contact.merged_into_id)
    if contact is None:
        raise NotFound(f"contact {contact_id} is gone")
    return contact


_ADDRESS_AS_NAME = re.compile(r"^[^\s@<>]+@[^\s@<>]+\.[^\s@<>]+$")


def _no_nul(value: str | None) -> str | None:
    # PostgreSQL text cannot hold NUL (a malformed quoted-printable "=00" in a real mail
    # decodes to one); SQLite can, so strip it on every backend alike.
    return value.replace("\x00", "") if value else value


def _clean_name(name: str | None) -> str | None:
    if not name:
        return None
    cleaned = " ".join(name.replace("\x00", "").split())[:200]
    return cleaned or None


def _email_refs(inbound: Inbound) -> list[str]:
    """The Message-IDs an email names as its parents (References, then In-Reply-To)."""
    hints = inbound.thread
    refs = [*hints.references, *([hints.in_reply_to] if hints.in_reply_to else [])]
    return list(dict.fromkeys(r for r in refs if r))


def _meta(inbound: Inbound) -> dict[str, Any]:
    meta = dict(inbound.meta)
    if inbound.channel == "email" and _email_refs(inbound):
        # Kept so a parent that arrives after its reply can find the reply's thread
        # (see `_email_candidate`).
        meta["references"] = _email_refs(inbound)
    return meta


def _thread_key(inbound: Inbound) -> str:
    # SMS/WhatsApp: one thread per business number the customer wrote to; web chat: per
    # visitor; email threads by headers and subject instead (empty key).
    if inbound.channel == "email":
        return ""
    return (inbound.recipient or "").lower()


def _view(conv: Conversation) -> ConversationView:
    return ConversationView(conv.id or 0, conv.status, conv.last_activity_at,
                            conv.resolved_at, conv.subject)


async def _pick_conversation(
    rt: Runtime,
    session: AsyncSession,
    inbound: Inbound,
    *,
    contact: Contact,
    identity: Identity,
    now: datetime,
    machine: bool,
) -> tuple[Conversation, bool]:
    window = timedelta(hours=rt.settings.reopen_window_hours)
    candidate: Conversation | None = None
    if inbound.channel == "email":
        candidate = await _email_candidate(rt, session, inbound, contact=contact, now=now,
                                           machine=machine)
    else:
        candidate = await store.latest_conversation(
            session, contact_id=contact.id or 0, channel=inbound.channel,
            thread_key=_thread_key(inbound))
    action = follow_up(_view(candidate) if candidate else None, now=now,
                       reopen_window=window, machine=machine)
    if candidate is not None and action == "append":
        return candidate, False
    if candidate is not None and action == "reopen":
        candidate.status, candidate.resolved_at, candidate.snoozed_until = "open", None, None
        return candidate, False
    conv = Conversation(
        contact_id=contact.id or 0,
        identity_id=identity.id,
        channel=inbound.channel,
        provider=inbound.provider,
        thread_key=_thread_key(inbound),
        our_address=inbound.reply_from or inbound.recipient,
        customer_address=inbound.sender,
        subject=_no_nul(inbound.thread.subject[:500]) if inbound.thread.subject else None,
        last_activity_at=now,
        created_at=now,
    )
    session.add(conv)
    await session.flush()
    return conv, True


async def _email_candidate(
    rt: Runtime, session: AsyncSession, inbound: Inbound, *, contact: Contact, now: datetime,
    machine: bool = False,
) -> Conversation | None:
    """Email threading: headers (the parents it names, else replies to it that arrived
    first), then our reply token, then subject + contact within the window. A person's
    reply on a changed subject starts a new conversation."""
    hints = inbound.thread
    window = timedelta(hours=rt.settings.reopen_window_hours)
    conv = await store.conversation_by_thread_ids(session, channel="email",
                                                  message_ids=_email_refs(inbound))
    if conv is None and hints.message_id:
        # Mail arrives out of order (relays, IMAP polling, greylisting): a reply may be
        # stored before the message it answers. Then the reply's References name this
        # mail's Message-ID, so this mail joins the reply's conversation, looking only
        # at conversations active within the reopen window. Several replies may name
        # it, one of them having changed the topic: the first on this topic wins.
        later = await store.conversations_referencing(
            session, channel="email", message_id=hints.message_id, active_since=now - window)
        if later:
            return next((c for c in later
                         if machine or subject_continues(c.subject, hints.subject)), None)
    if conv is None and hints.reply_token and hints.reply_token.isdigit():
        conv = await session.get(Conversation, int(hints.reply_token))
        if conv is not None and conv.channel != "email":
            conv = None
    if conv is not None:
        # A reply whose subject changed topic starts a new conversation. Not for machine
        # mail: auto-responders and bounces write their own subjects ("Away until May
        # 5", "Undeliverable: ..."), and belong with the thread they answer.
        if machine or subject_continues(conv.subject, hints.subject):
            return conv
        return None
    for recent in await store.conversations_of_contact(
        session, contact_id=contact.id or 0, channel="email", limit=20
    ):
        if now - recent.last_activity_at > window:
            break
        if hints.subject and recent.subject and _same_subject(recent.subject, hints.subject):
            return recent
    return None


def _same_subject(a: str, b: str) -> bool:
    from inbox.threading import normalise_subject

    na, nb = normalise_subject(a), normalise_subject(b)
    return bool(na) and na == nb


async def _store_attachments(
    session: AsyncSession, message_id: int, attachments: list[Attachment]
) -> list[dict[str, Any]]:
    stored: list[dict[str, Any]] = []
    for att in attachments:
        item: dict[str, Any] = {
            "content_type": att.content_type,
            "filename": att.filename,
            "url": att.url,
            "size": att.size,
            "inline": att.inline,
            "content_id": att.content_id,
        }
        if att.data is not None:
            blob = StoredFile(message_id=message_id, filename=att.filename,
                              content_type=att.content_type, size=len(att.data), data=att.data)
            session.add(blob)
            await session.flush()
            item["file_id"] = blob.id
            item["size"] = len(att.data)
        stored.append(item)
    return stored


async def _contact_event(session: AsyncSession, contact: Contact) -> EventOut:
    from inbox.schemas import contact_out

    identities = await store.identities_of(session, contact_id=contact.id or 0)
    return await store.add_event(session, type="contact.updated", conversation_id=None,
                                 payload={"contact": contact_out(contact, identities)})


# ---------------------------------------------------------------------------- status


async def record_status(rt: Runtime, update: StatusUpdate) -> bool:
    """Apply a delivery report to our message; False when we do not know the message.

    States only move forward (a late "delivered" after "read" changes nothing);
    failures always apply and keep the provider's code and reason.
    """
    async with rt.sessions() as session, session.begin():
        message = None
        if update.provider_message_id:
            message = await store.message_by_provider_id(
                session, channel=update.channel, provider_message_id=update.provider_message_id)
        elif update.recipient:
            # A bounce that does not quote our message: the latest one we sent them.
            message = await store.latest_outbound_to(session, channel=update.channel,
                                                     address=update.recipient)
        if message is None or message.direction != "out":
            return False
        # Compare-and-set, not read-modify-write: Twilio sends sent/delivered/read within
        # milliseconds and they may be applied concurrently; a late one must lose.
        cas = sa_update(Message).where(Message.id == message.id)  # type: ignore[arg-type]
        if update.status in _FINAL_FAILURES:
            cas = cas.where(or_(Message.delivery_status.is_(None),  # type: ignore[union-attr]
                                Message.delivery_status != update.status,
                                Message.error_code.is_distinct_from(update.error_code)))  # type: ignore[union-attr]
            values = {"delivery_status": update.status, "error_code": update.error_code,
                      "error_text": update.error_text}
        else:
            rank = _PROGRESS.get(update.status, -1)
            behind = [state for state, r in _PROGRESS.items() if r < rank]
            cas = cas.where(or_(Message.delivery_status.is_(None),  # type: ignore[union-attr]
                                Message.delivery_status.in_(behind)))  # type: ignore[union-attr]
            values = {"delivery_status": update.status}
        changed = await session.exec(cas.values(**values))  # type: ignore[call-overload]
        if changed.rowcount == 0:
            return True
        await session.refresh(message)
        event = await store.add_event(
            session, type="message.updated", conversation_id=message.conversation_id,
            payload={"message": message_out(message)})
    rt.after_commit([event])
    return True


# ---------------------------------------------------------------------------- reply


async def reply(
    rt: Runtime,
    *,
    conversation_id: int,
    text: str,
    author_kind: str = "agent",
    agent_id: int | None = None,
    private: bool = False,
    html: str | None = None,
    attachments: list[dict[str, Any]] | None = None,
    template: TemplateRef | None = None,
    meta: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Store an outbound message (or private note) and queue it for sending, atomically.

    Refuses with `PolicyRefused` when the customer opted out on this channel, and with
    the connector's `Conflict` when the channel does not allow it now (the WhatsApp
    window). An agent's reply makes the conversation human-handled (the bot goes
    silent) and assigns it to that agent when nobody has it. Returns the message.
    """
    text = (text or "").replace("\x00", "")
    if author_kind not in ("agent", "bot", "system"):
        raise BadInput(f"unknown author kind {author_kind!r}")
    if not text.strip() and not attachments and template is None:
        raise BadInput("a reply needs text, an attachment or a template")
    async with rt.sessions() as session, session.begin():
        conv = await session.get(Conversation, conversation_id)
        if conv is None:
            raise NotFound(f"conversation {conversation_id} does not exist")
        if not private:
            await _check_can_send(rt, session, conv, template=template)
        now = utcnow()
        message = Message(
            conversation_id=conversation_id,
            channel=conv.channel,
            direction="out",
            author_kind=author_kind,
            author_agent_id=agent_id,
            text=text,
            html=html,
            attachments=list(attachments or []),
            private=private,
            delivery_status=None if private else "pending",
            meta=dict(meta or {}),
            created_at=now,
        )
        if template is not None:
            message.meta["template"] = {"name": template.name, "language": template.language,
                                        "variables": template.variables}
        session.add(message)
        await session.flush()
        if not private:
            session.add(OutboxRow(message_id=message.id or 0, next_attempt_at=now))
        changed = False
        if author_kind == "agent" and not private:
            if conv.handled_by != "human":
                conv.handled_by, changed = "human", True
            if conv.assignee_id is None and agent_id is not None:
                conv.assignee_id, changed = agent_id, True
            if conv.unread_count:
                conv.unread_count, changed = 0, True
        if author_kind == "bot":
            conv.bot_answers += 1
        conv.last_activity_at = now
        await session.flush()
        contact = await session.get(Contact, conv.contact_id)
        summary = conversation_out(conv, contact_name=contact.name if contact else None,
                                   last_message=message)
        events = [await store.add_event(
            session, type="message.created", conversation_id=conversation_id,
            payload={"message": message_out(message), "conversation": summary})]
        if changed:
            events.append(await store.add_event(
                session, type="conversation.updated", conversation_id=conversation_id,
                payload={"conversation": summary}))
        out = message_out(message)
    rt.after_commit(events, outbox=not private)
    return out


async def _check_can_send(
    rt: Runtime, session: AsyncSession, conv: Conversation, *, template: TemplateRef | None
) -> None:
    if conv.identity_id is not None:
        identity = await session.get(Identity, conv.identity_id)
        # STOP is an SMS rule (carriers enforce it; Twilio error 21610): the same number
        # can still be answered on WhatsApp, where the customer wrote to us.
        if identity is not None and identity.opted_out and conv.channel == "sms":
            raise PolicyRefused(
                f"{identity.raw or identity.value} has opted out of messages on this channel "
                "(they can reply START to opt back in)",
                extra={"reason": "opted_out"},
            )
    connector = rt.connectors.get(conv.provider)
    if connector is None:
        raise Conflict(f"the {conv.provider} channel is not configured on this server",
                       extra={"reason": "channel_not_configured"})
    check = getattr(connector, "check_reply", None)
    if check is not None:
        check(channel=conv.channel, last_customer_at=conv.last_customer_at, now=utcnow(),
              template=template)


# ---------------------------------------------------------------------------- state changes


async def _change(
    rt: Runtime, conversation_id: int, mutate: Any, *, system_note: str | None = None
) -> dict[str, Any]:
    async with rt.sessions() as session, session.begin():
        conv = await session.get(Conversation, conversation_id)
        if conv is None:
            raise NotFound(f"conversation {conversation_id} does not exist")
        mutate(conv)
        await session.flush()
        contact = await session.get(Contact, conv.contact_id)
        summary = conversation_out(conv, contact_name=contact.name if contact else None)
        events = []
        if system_note:
            note = Message(conversation_id=conversation_id, channel=conv.channel, direction="out",
                           author_kind="system", text=system_note, private=True)
            session.add(note)
            await session.flush()
            events.append(await store.add_event(
                session, type="message.created", conversation_id=conversation_id,
                payload={"message": message_out(note), "conversation": summary}))
        events.append(await store.add_event(
            session, type="conversation.updated", conversation_id=conversation_id,
            payload={"conversation": summary}))
    rt.after_commit(events)
    return summary


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


async def hand_over(rt: Runtime, *, conversation_id: int, reason: str) -> dict[str, Any]:
    """The bot gives the conversation to the human queue, saying why (a private note)."""

    def mutate(conv: Conversation) -> None:
        conv.handled_by = "human"
        if conv.status == "resolved":
            conv.status = "open"

    return await _change(rt, conversation_id, mutate, system_note=f"Handed to a person: {reason}")


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
    rt: Runtime, *, visitor: str, email: str | None, name: str | None
) -> int | None:
    """A web-chat visitor leaves an email (and/or a name) so a late reply reaches them.

    The email identity joins the visitor's contact; if that email already belongs to
    another contact, the visitor's identity and conversations move to that contact
    (the person is one person). A visitor who has not written yet gets a contact now.
    Returns the contact id (None when there was nothing to record).
    """
    address = canonical("email", email) if email else None
    async with rt.sessions() as session, session.begin():
        identity = await store.find_identity(session, kind="webchat", value=visitor)
        if identity is None:
            if not address and not _clean_name(name):
                return None
            # Left before the first message: keep it (it was silently dropped), so the
            # visitor's first message joins this contact by its webchat identity.
            _contact, identity = await store.create_contact_with_identity(
                session, kind="webchat", value=visitor, raw=visitor, name=None)
        contact = await _live_contact(session, identity.contact_id)
        cleaned = _clean_name(name)
        if cleaned and not contact.name:
            contact.name = cleaned
        if address:
            existing = await store.find_identity(session, kind="email", value=address)
            if existing is None:
                session.add(Identity(contact_id=contact.id or 0, kind="email", value=address, raw=email))
            elif existing.contact_id != contact.id:
                owner = await _live_contact(session, existing.contact_id)
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
        event = await _contact_event(session, contact)
    rt.after_commit([event])
    return contact.id


# ---------------------------------------------------------------------------- retry


async def retry_message(rt: Runtime, *, message_id: int) -> dict[str, Any]:
    """Send a failed outbound message again (an agent's "retry").

    Only failed/undelivered messages that were meant to be sent qualify (`Conflict`
    otherwise); the channel's rules are checked again (an opted-out customer is still
    refused). The message goes back to pending and its outbox row is due at once.
    """
    async with rt.sessions() as session, session.begin():
        message = await session.get(Message, message_id)
        if message is None:
            raise NotFound(f"message {message_id} does not exist")
        if message.direction != "out" or message.private or \
                message.delivery_status not in _FINAL_FAILURES:
            raise Conflict("only a failed message can be sent again",
                           extra={"reason": "not_failed"})
        conv = await session.get(Conversation, message.conversation_id)
        assert conv is not None
        await _check_can_send(rt, session, conv, template=None)
        row = await store.outbox_for_message(session, message_id=message_id)
        now = utcnow()
        if row is None:
            session.add(OutboxRow(message_id=message_id, next_attempt_at=now))
        else:
            row.state, row.attempts, row.next_attempt_at = "pending", 0, now
            row.last_error, row.lease_until, row.updated_at = None, None, now
        message.delivery_status, message.error_code, message.error_text = "pending", None, None
        await session.flush()
        out = message_out(message)
        event = await store.add_event(session, type="message.updated",
                                      conversation_id=message.conversation_id,
                                      payload={"message": out})
    rt.after_commit([event], outbox=True)
    return out
