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
from typing import Any, cast

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlmodel.ext.asyncio.session import AsyncSession

from inbox import ingest_sql as sql
from inbox import sqlrun, store
from inbox.errors import Conflict, NotFound
from inbox.events import EventOut, view_fields
from inbox.identity import canonical
from inbox.models import Contact, Conversation, Message
from inbox.replies import reply
from inbox.runtime import Runtime
from inbox.schemas import contact_out, conversation_out, message_out
from inbox.sqlrun import Query
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


@dataclass(slots=True)
class IngestResult:
    """What `ingest` did: the stored message, and whether it was new."""

    message_id: int
    conversation_id: int
    contact_id: int
    duplicate: bool
    events: list[EventOut] = field(default_factory=list)


@dataclass(slots=True)
class _ContactRef:
    """What ingest needs of the sender's (live) contact."""

    id: int
    name: str | None
    created_at: datetime


@dataclass(slots=True)
class _Sender:
    contact: _ContactRef
    identity_id: int
    opted_out: bool
    latest: ConversationView | None  # or _UNKNOWN: still to be looked up


@dataclass(slots=True)
class _StoredMessage:
    """The message as ingest inserted it: what `message_out` and `conversation_out` read
    (no ORM object is built for it)."""

    id: int
    conversation_id: int
    channel: str
    direction: str
    author_kind: str
    author_agent_id: int | None
    text: str
    html: str | None
    attachments: list[dict[str, Any]]
    provider_message_id: str | None
    thread_message_id: str | None
    delivery_status: str | None
    error_code: str | None
    error_text: str | None
    private: bool
    flags: list[str]
    meta: dict[str, Any]
    raw: dict[str, Any]
    created_at: datetime


# ---------------------------------------------------------------------------- ingest


async def ingest(rt: Runtime, inbound: Inbound) -> IngestResult:
    """Store a customer's message exactly once and tell everyone after commit.

    Resolves the contact by canonical identity, picks or opens the conversation,
    stores the message idempotently (same channel + provider id: nothing new, no event),
    appends the events, commits; then publishes, runs responders, answers HELP.
    Raises `BadInput` for an inbound whose sender cannot be read.
    """
    value = canonical(inbound.sender_kind, inbound.sender, default_region=rt.settings.default_region)
    for attempt in range(_ATTEMPTS):
        try:
            # The first attempt skips the look-up by provider id: a retried webhook is
            # rare, and its insert finds the (channel, provider id) taken and rolls
            # everything back (one statement less for every new message).
            result = await _ingest_once(rt, inbound, value, known_new=attempt == 0)
            break
        except (_Stored, _Moved):
            continue
        except IntegrityError:
            # A retried or concurrent delivery of the same webhook (or the same new
            # contact) won the race; the next attempt finds what it stored.
            if attempt >= 2:
                raise
    else:
        raise Conflict("the conversation kept changing while this message was stored; retry")
    if not result.duplicate:
        rt.after_commit(result.events)
        if FLAG_HELP in inbound.flags and rt.settings.help_text:
            rt.spawn(_answer_help(rt, result.conversation_id))
    return result


# Attempts per message: a retried webhook takes two (the second finds it), a conversation
# whose status changes between ingest's read and its update (PostgreSQL) one more.
_ATTEMPTS = 5


async def _answer_help(rt: Runtime, conversation_id: int) -> None:
    try:
        await reply(rt, conversation_id=conversation_id, text=rt.settings.help_text,
                    author_kind="system")
    except Exception:
        log.exception("could not answer HELP in conversation %s", conversation_id)


class _Stored(Exception):
    """This channel's provider id is stored already (a retried webhook): roll back."""


class _Moved(Exception):
    """The conversation's status changed after ingest read it: roll back, read again."""


async def _ingest_once(rt: Runtime, inbound: Inbound, value: str, *,
                       known_new: bool) -> IngestResult:
    window = timedelta(hours=rt.settings.reopen_window_hours)
    dialect = rt.engine.dialect.name
    # The plan's maker, not the plan: a group of them on SQLite needs no savepoints.
    plan = functools.partial(_store, rt, inbound, value, known_new=known_new, window=window,
                             dialect=dialect)
    # Email threading reads through the ORM (`_email_candidate`): not in one hop.
    return await sqlrun.run(rt.engine, plan, one_hop=inbound.channel != "email")


def _store(rt: Runtime, inbound: Inbound, value: str, *, known_new: bool, window: timedelta,
           dialect: str) -> sqlrun.Plan[IngestResult]:
    """The transaction: every statement it yields runs in it (see `inbox.sqlrun`)."""
    if not known_new:
        (found,) = (yield Query(sql.stored_message(), {
            "channel": inbound.channel, "provider_message_id": inbound.provider_message_id,
        })) or (None,)
        if found is not None:
            return IngestResult(found.id, found.conversation_id, found.contact_id, duplicate=True)
    sender = yield from _resolve_sender(inbound, value)
    contact = sender.contact
    now = utcnow()
    machine = bool(inbound.flags & MACHINE_FLAGS)
    # The contact event is written last with the others: add_event takes the event
    # lock (PostgreSQL), and taking it before the conversation row update deadlocked
    # with a concurrent message of the same customer holding that row.
    opted_out: bool | None = None
    if FLAG_OPT_OUT in inbound.flags and not sender.opted_out:
        opted_out = True
    elif FLAG_OPT_IN in inbound.flags and sender.opted_out:
        opted_out = False
    if opted_out is not None:
        yield Query(sql.set_opted_out(), {
            "identity_id": sender.identity_id, "opted_out": opted_out,
            "opted_out_at": now if opted_out else None})

    candidate, action = yield from _pick_conversation(rt, inbound, sender=sender, now=now,
                                                      machine=machine, window=window)
    previous: dict[str, Any] | None = None
    if candidate is None:
        (conv,) = yield Query(sql.insert_conversation(), _new_conversation(
            inbound, sender, now=now, machine=machine))
    else:
        reopen = action == "reopen"
        unsnooze = candidate.status == "snoozed" and not machine
        subject = candidate.subject is None and bool(inbound.thread.subject)
        params: dict[str, Any] = {"conversation_id": candidate.id, "old_status": candidate.status,
                                  "now": now}
        if subject:
            params["subject"] = _no_nul((inbound.thread.subject or "")[:500])
        touched = yield Query(sql.touch_conversation(
            customer=not machine, reopen=reopen, unsnooze=unsnooze, subject=subject), params)
        if not touched:
            raise _Moved  # its status changed since the read: decide again
        conv = touched[0]
        if reopen or unsnooze:
            # Its view state before this message, for the sockets watching the view it
            # leaves (inbox.routing): the guarded UPDATE changed only the status.
            previous = {**view_fields(conv), "status": candidate.status}

    params = _message_params(inbound, conversation_id=conv.id, now=now)
    inserted = yield Query(sql.insert_message(dialect), params)
    if not inserted:
        raise _Stored  # rolls back this attempt; the next one finds what was stored
    new_id = inserted[0].id
    if any(att.data is not None for att in inbound.attachments):
        params["attachments"] = yield from _store_attachments(new_id, inbound.attachments)
    message = _StoredMessage(id=new_id, **params)
    summary = conversation_out(conv, contact_name=contact.name,
                               last_message=cast(Message, message))
    items: list[tuple[str, int | None, dict[str, Any]]] = []
    if opted_out is not None:
        identities = yield Query(sql.identities_of(), {"contact_id": contact.id})
        items.append(("contact.updated", None,
                      {"contact": contact_out(cast(Contact, contact), identities)}))
    if candidate is None:
        items.append(("conversation.created", conv.id, {"conversation": summary}))
    payload: dict[str, Any] = {"message": message_out(cast(Message, message)),
                               "conversation": summary}
    if previous is not None:
        payload["previous"] = previous
    items.append(("message.created", conv.id, payload))
    events = yield from sql.insert_events(items, dialect=dialect)
    return IngestResult(new_id, conv.id, contact.id, False, events)


def _new_conversation(inbound: Inbound, sender: _Sender, *, now: datetime,
                      machine: bool) -> dict[str, Any]:
    return {
        "contact_id": sender.contact.id,
        "identity_id": sender.identity_id,
        "channel": inbound.channel,
        "provider": inbound.provider,
        "thread_key": _thread_key(inbound),
        "our_address": inbound.reply_from or inbound.recipient,
        "customer_address": inbound.sender,
        "subject": _no_nul(inbound.thread.subject[:500]) if inbound.thread.subject else None,
        "status": "open",
        "assignee_id": None,
        "handled_by": "bot",
        "snoozed_until": None,
        "resolved_at": None,
        "last_activity_at": now,
        # What a message does to an existing conversation, done in the insert.
        "last_customer_at": None if machine else now,
        "unread_count": 0 if machine else 1,
        "bot_answers": 0,
        # The same time as the message that opens it: the FAQ responder tells a
        # conversation this message opened by that (`faq.responder._opened`).
        "created_at": now,
    }


def _message_params(inbound: Inbound, *, conversation_id: int, now: datetime) -> dict[str, Any]:
    """Every column of the customer's message (`ingest_sql.MESSAGE_COLUMNS`)."""
    return {
        "conversation_id": conversation_id,
        "channel": inbound.channel,
        "direction": "in",
        "author_kind": "customer",
        "author_agent_id": None,
        "text": _no_nul(inbound.text) or "",
        "html": _no_nul(inbound.html),
        "attachments": [_attachment_item(att) for att in inbound.attachments],
        "provider_message_id": inbound.provider_message_id,
        "thread_message_id": inbound.thread.message_id,
        "delivery_status": None,
        "error_code": None,
        "error_text": None,
        "private": False,
        "flags": sorted(inbound.flags),
        "meta": _meta(inbound),
        "raw": inbound.raw,
        "created_at": now,
    }


def _resolve_sender(inbound: Inbound, value: str) -> sqlrun.Plan[_Sender]:
    """The sender's (live) contact and identity, created when new; for channels threaded
    by key, also the contact's newest conversation on this thread, read in the same
    round trip (`_UNKNOWN` when it still has to be looked up)."""
    email = inbound.channel == "email"
    params: dict[str, Any] = {"kind": inbound.sender_kind, "value": value}
    if not email:
        params.update(channel=inbound.channel, thread_key=_thread_key(inbound))
    (row,) = (yield Query(sql.sender(not email), params)) or (None,)
    name = clean_name(inbound.display_name)
    if name and _ADDRESS_AS_NAME.match(name):
        # "alice@example.com <bob@example.com>": an address posing as a name (a spoofing
        # trick, or a client echoing the address) would show agents the wrong person.
        name = None
    if row is None:
        now = utcnow()
        (new_contact,) = yield Query(sql.insert_contact(), {
            "name": name, "created_at": now, "updated_at": now})
        contact_id = new_contact.id
        (new_identity,) = yield Query(sql.insert_identity(), {
            "contact_id": contact_id, "kind": inbound.sender_kind, "value": value,
            "raw": inbound.sender, "opted_out": False, "created_at": now})
        identity_id = new_identity.id
        return _Sender(_ContactRef(contact_id, name, now), identity_id, False, None)
    contact = _ContactRef(row.contact_id, row.name, row.contact_created_at)
    latest: ConversationView | None = _UNKNOWN
    if not email and row.conv_id is not None:
        latest = ConversationView(row.conv_id, row.conv_status, row.conv_last_activity_at,
                                  row.conv_resolved_at, row.conv_subject)
    elif not email:
        latest = None
    if row.merged_into_id:
        # Merged away: the live contact's threads count, not this one's.
        contact, latest = (yield from _live_contact(row.contact_id)), _UNKNOWN
    if name and not contact.name:
        yield Query(sql.name_contact(), {"contact_id": contact.id, "name": name, "now": utcnow()})
        contact.name = name
    return _Sender(contact, row.identity_id, row.opted_out, latest)


def _live_contact(contact_id: int) -> sqlrun.Plan[_ContactRef]:
    """Follow merges to the contact that now owns this one's identities."""
    seen: set[int] = set()
    current = contact_id
    while True:
        rows = yield Query(sql.contact_by_id(), {"contact_id": current})
        if not rows:
            raise NotFound(f"contact {contact_id} is gone")
        found = rows[0]
        if not found.merged_into_id or found.id in seen:
            return _ContactRef(found.id, found.name, found.created_at)
        seen.add(found.id)
        current = found.merged_into_id


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


def _pick_conversation(
    rt: Runtime, inbound: Inbound, *, sender: _Sender, now: datetime, machine: bool,
    window: timedelta,
) -> sqlrun.Plan[tuple[ConversationView | None, str]]:
    """The conversation this message goes to and what it does there (`follow_up`:
    append or reopen); None when it opens a new one."""
    candidate: ConversationView | None
    if inbound.channel == "email":

        async def lookup(conn: AsyncConnection) -> ConversationView | None:
            # A session joined to the plan's transaction (closing it leaves that open).
            session = AsyncSession(bind=conn, expire_on_commit=False)
            try:
                found = await _email_candidate(rt, session, inbound, contact_id=sender.contact.id,
                                               now=now, machine=machine)
                return _view(found) if found is not None else None
            finally:
                await session.close()

        candidate = yield lookup  # through the ORM: `_ingest_once` runs email plans async
    elif sender.latest is not _UNKNOWN:
        candidate = sender.latest  # read with the contact (`_resolve_sender`)
    else:
        rows = yield Query(sql.latest_conversation(), {
            "contact_id": sender.contact.id, "channel": inbound.channel,
            "thread_key": _thread_key(inbound)})
        candidate = ConversationView(*rows[0]) if rows else None
    action = follow_up(candidate, now=now, reopen_window=window, machine=machine)
    if candidate is None or action == "new":
        return None, "new"
    return candidate, action


async def _email_candidate(
    rt: Runtime, session: AsyncSession, inbound: Inbound, *, contact_id: int, now: datetime,
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
        session, contact_id=contact_id, channel="email", limit=20
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


def _store_attachments(
    message_id: int, attachments: list[Attachment]
) -> sqlrun.Plan[list[dict[str, Any]]]:
    """Keep the bytes of attachments that came with them (email) as stored files, and
    return the message's attachment list naming them."""
    stored: list[dict[str, Any]] = []
    for att in attachments:
        item = _attachment_item(att)
        if att.data is not None:
            (stored_file,) = yield Query(sql.insert_stored_file(), {
                "message_id": message_id, "filename": att.filename,
                "content_type": att.content_type, "size": len(att.data), "data": att.data,
            })
            item["file_id"] = stored_file.id
            item["size"] = len(att.data)
        stored.append(item)
    yield Query(sql.set_attachments(), {"message_id": message_id, "attachments": stored})
    return stored


async def contact_event(session: AsyncSession, contact: Contact) -> EventOut:
    """Append a `contact.updated` event with the contact and its identities as stored."""
    identities = await store.identities_of(session, contact_id=contact.id or 0)
    return await store.add_event(session, type="contact.updated", conversation_id=None,
                                 payload={"contact": contact_out(contact, identities)})


