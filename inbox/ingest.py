"""Ingest: a customer's message arrives (any channel) and is stored exactly once.

Resolves the contact by canonical identity, picks or opens the conversation (the
threading rules in `inbox.threading`), stores the message and its events in one
transaction, then publishes and runs responders after commit.
"""

from __future__ import annotations

import functools
import logging
import re
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import bindparam
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import make_transient_to_detached
from sqlmodel.ext.asyncio.session import AsyncSession

from inbox import store
from inbox.errors import NotFound
from inbox.events import EventOut
from inbox.identity import canonical
from inbox.models import (
    Contact,
    Conversation,
    Identity,
    Message,
    StoredFile,
)
from inbox.replies import reply
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
    utcnow,
)

log = logging.getLogger(__name__)

# "The newest conversation of this thread has not been looked up yet" (None: there is none).
_UNKNOWN: Any = object()
_Latest = Conversation | None

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
            # The first attempt skips the look-up by provider id: a retried webhook is
            # rare, and its insert finds the (channel, provider id) taken and rolls
            # everything back (one statement less for every new message).
            result = await _ingest_once(rt, inbound, value, known_new=attempt == 0)
            break
        except _Stored:
            continue
        except IntegrityError:
            # A retried or concurrent delivery of the same webhook (or the same new
            # contact) won the race; the next attempt finds what it stored.
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


async def _ingest_once(rt: Runtime, inbound: Inbound, value: str, *,
                       known_new: bool) -> IngestResult:
    async with rt.sessions() as session, session.begin():
        if not known_new:
            existing = await store.message_by_provider_id(
                session, channel=inbound.channel, provider_message_id=inbound.provider_message_id
            )
            if existing is not None:
                conv = await session.get(Conversation, existing.conversation_id)
                return IngestResult(existing.id or 0, existing.conversation_id,
                                    conv.contact_id if conv else 0, duplicate=True)
        contact, identity, latest = await _resolve_contact(session, inbound, value)
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
            rt, session, inbound, contact=contact, identity=identity, now=now, machine=machine,
            latest=latest)
        if not created:  # (a new one was stored in this state already)
            # The conversation's new state goes out in the same flush as the message.
            conv.last_activity_at = now
            if not machine:
                conv.last_customer_at = now
                conv.unread_count += 1
            if conv.status == "snoozed" and not machine:
                conv.status, conv.snoozed_until = "open", None
            if conv.subject is None and inbound.thread.subject:
                conv.subject = _no_nul(inbound.thread.subject[:500])
        message = Message(
            conversation_id=conv.id or 0,
            channel=inbound.channel,
            direction="in",
            author_kind="customer",
            text=_no_nul(inbound.text) or "",
            html=_no_nul(inbound.html),
            attachments=[_attachment_item(att) for att in inbound.attachments],
            provider_message_id=inbound.provider_message_id,
            thread_message_id=inbound.thread.message_id,
            flags=sorted(inbound.flags),
            meta=_meta(inbound),
            raw=inbound.raw,
            created_at=now,
        )
        if known_new:
            if not await _insert_unless_stored(session, message):
                raise _Stored  # rolls back this attempt; the next one finds what was stored
        else:
            session.add(message)
            await session.flush()
        if any(att.data is not None for att in inbound.attachments):
            message.attachments = await _store_attachments(session, message.id or 0,
                                                           inbound.attachments)
            await session.flush()
        summary = conversation_out(conv, contact_name=contact.name, last_message=message)
        if contact_changed:
            events.append(await contact_event(session, contact))
        if created:
            events.append(await store.add_event(
                session, type="conversation.created", conversation_id=conv.id,
                payload={"conversation": summary}))
        events.append(await store.add_event(
            session, type="message.created", conversation_id=conv.id,
            payload={"message": message_out(message), "conversation": summary}))
        return IngestResult(message.id or 0, conv.id or 0, contact.id or 0, False, events)


class _Stored(Exception):
    """This channel's provider id is stored already (a retried webhook): roll back."""


@functools.cache
def _insert_message(dialect: str) -> Any:
    # ON CONFLICT DO NOTHING, not a refused INSERT: PostgreSQL logs every unique
    # violation as an ERROR, one per retried webhook. Built once per dialect.
    table: Any = Message.__table__
    columns = [c for c in table.columns if c.key != "id"]
    insert = pg_insert if dialect == "postgresql" else sqlite_insert
    return (insert(table).values({c.key: bindparam(c.key, type_=c.type) for c in columns})
            .on_conflict_do_nothing(index_elements=["channel", "provider_message_id"])
            .returning(table.c.id))


async def _insert_unless_stored(session: AsyncSession, message: Message) -> bool:
    """Insert `message` (as the session's own, persistent row) unless the same provider
    id is stored on its channel; False then."""
    table: Any = Message.__table__
    params = {c.key: getattr(message, c.key) for c in table.columns if c.key != "id"}
    dialect = session.bind.dialect.name if session.bind is not None else "sqlite"
    result = await session.exec(_insert_message(dialect), params=params)  # type: ignore[call-overload]
    new_id = result.scalar()
    if new_id is None:
        return False
    message.id = new_id
    make_transient_to_detached(message)
    session.add(message)
    return True


async def _resolve_contact(
    session: AsyncSession, inbound: Inbound, value: str
) -> tuple[Contact, Identity, _Latest]:
    """The sender's (live) contact and identity, created when new; for channels threaded
    by key, also the contact's newest conversation on this thread, read in the same
    round trip (`_UNKNOWN` when it still has to be looked up)."""
    email = inbound.channel == "email"
    found = await store.identity_with_contact(
        session, kind=inbound.sender_kind, value=value,
        channel=None if email else inbound.channel, thread_key=_thread_key(inbound))
    name = clean_name(inbound.display_name)
    if name and _ADDRESS_AS_NAME.match(name):
        # "alice@example.com <bob@example.com>": an address posing as a name (a spoofing
        # trick, or a client echoing the address) would show agents the wrong person.
        name = None
    if found is None:
        contact, identity = await store.create_contact_with_identity(
            session, kind=inbound.sender_kind, value=value, raw=inbound.sender, name=name)
        return contact, identity, None
    identity, contact, latest = found
    if email:
        latest = _UNKNOWN
    if contact.merged_into_id:
        # Merged away: the live contact's threads count, not this one's.
        contact, latest = await live_contact(session, contact.id or 0), _UNKNOWN
    if name and not contact.name:
        contact.name, contact.updated_at = name, utcnow()
    return contact, identity, latest


async def live_contact(session: AsyncSession, contact_id: int) -> Contact:
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


def clean_name(name: str | None) -> str | None:
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
    latest: _Latest = _UNKNOWN,
) -> tuple[Conversation, bool]:
    window = timedelta(hours=rt.settings.reopen_window_hours)
    candidate: Conversation | None = None
    if inbound.channel == "email":
        candidate = await _email_candidate(rt, session, inbound, contact=contact, now=now,
                                           machine=machine)
    elif latest is not _UNKNOWN:
        candidate = latest  # read with the contact (`_resolve_contact`)
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
        # What `_ingest_once` does to an existing conversation, done before the insert.
        last_customer_at=None if machine else now,
        unread_count=0 if machine else 1,
        # The same time as the message that opens it: the FAQ responder tells a
        # conversation this message opened by that (`faq.responder._opened`).
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


def _attachment_item(att: Attachment) -> dict[str, Any]:
    """An attachment as `Message.attachments` keeps it (bytes aside: see StoredFile)."""
    return {
        "content_type": att.content_type,
        "filename": att.filename,
        "url": att.url,
        "size": att.size,
        "inline": att.inline,
        "content_id": att.content_id,
    }


async def _store_attachments(
    session: AsyncSession, message_id: int, attachments: list[Attachment]
) -> list[dict[str, Any]]:
    stored: list[dict[str, Any]] = []
    for att in attachments:
        item = _attachment_item(att)
        if att.data is not None:
            blob = StoredFile(message_id=message_id, filename=att.filename,
                              content_type=att.content_type, size=len(att.data), data=att.data)
            session.add(blob)
            await session.flush()
            item["file_id"] = blob.id
            item["size"] = len(att.data)
        stored.append(item)
    return stored


async def contact_event(session: AsyncSession, contact: Contact) -> EventOut:
    from inbox.schemas import contact_out

    identities = await store.identities_of(session, contact_id=contact.id or 0)
    return await store.add_event(session, type="contact.updated", conversation_id=None,
                                 payload={"contact": contact_out(contact, identities)})


