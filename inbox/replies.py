"""Outbound steps: replies (agent, bot, system), delivery reports, retries.

A reply is stored with its outbox row in one transaction; the dispatcher sends it.
"""

from __future__ import annotations

import logging
from datetime import datetime
from types import SimpleNamespace
from typing import Any

from sqlalchemy import or_
from sqlalchemy import update as sa_update
from sqlmodel.ext.asyncio.session import AsyncSession

from inbox import ingest_sql as sql
from inbox import sqlrun, store
from inbox.errors import BadInput, Conflict, NotFound, PolicyRefused
from inbox.events import EventOut, view_fields
from inbox.models import (
    Contact,
    Conversation,
    Identity,
    Message,
    OutboxRow,
)
from inbox.runtime import Runtime
from inbox.schemas import conversation_out, message_out
from inbox.sqlrun import Query
from inbox.types import (
    StatusUpdate,
    TemplateRef,
    utcnow,
)

log = logging.getLogger(__name__)


# Progress order of delivery states: a late "delivered" never overrides "read".
_PROGRESS = {"pending": 0, "queued": 1, "sent": 2, "delivered": 3, "read": 4}
_FINAL_FAILURES = ("failed", "undelivered")


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
        previous = view_fields(conv)
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
        # When the reply moves the conversation between views (assigned, handed to a
        # human), the state before goes with it: sockets showing the old view hear that
        # it left, whatever this worker's router knows (inbox.routing).
        moved = {"previous": previous} if view_fields(conv) != previous else {}
        out = message_out(message)
        items: list[tuple[str, int | None, dict[str, Any]]] = [
            ("message.created", conversation_id,
             {"message": out, "conversation": summary, **moved})]
        if changed:
            items.append(("conversation.updated", conversation_id,
                          {"conversation": summary, **moved}))
        events = await store.add_events(session, items)  # one INSERT for both
    rt.after_commit(events, outbox=not private)
    return out


async def bot_answer(
    rt: Runtime, *, conversation_id: int, text: str, html: str | None = None,
    meta: dict[str, Any] | None = None, also: sqlrun.Plan[Any] | None = None,
) -> dict[str, Any] | None:
    """The bot answers in a conversation it still handles, as `reply` stores a bot's
    reply (the message pending delivery with its outbox row, one more bot answer, the
    activity time, its event), in one transaction of prebuilt statements
    (`inbox.sqlrun`; on SQLite one hop) that starts with the guarded conversation
    UPDATE ... RETURNING. `also` is a plan of the caller's own statements (the FAQ
    entry's answer count), committed with the answer or not at all.

    Returns the message, or None (nothing written) when the conversation is gone or a
    person handles it now. Refuses as `reply` does (`check_can_send`), with nothing
    written. The outbox is dispatched after commit.
    """
    text = (text or "").replace("\x00", "")
    if not text.strip():
        raise BadInput("a reply needs text, an attachment or a template")
    plan = _bot_answer_plan(rt, conversation_id=conversation_id, text=text, html=html,
                            meta=dict(meta or {}), also=also, dialect=rt.engine.dialect.name)
    done = await sqlrun.run(rt.engine, plan)
    if done is None:
        return None
    out, events = done
    rt.after_commit(events, outbox=True)
    return out


def _bot_answer_plan(
    rt: Runtime, *, conversation_id: int, text: str, html: str | None, meta: dict[str, Any],
    also: sqlrun.Plan[Any] | None, dialect: str,
) -> sqlrun.Plan[tuple[dict[str, Any], list[EventOut]] | None]:
    now = utcnow()
    rows = yield Query(sql.count_bot_message(while_bot=True),
                       {"conversation_id": conversation_id, "now": now})
    if not rows:
        return None
    conv = rows[0]
    # Raising rolls the count back: the answer is stored whole or not at all.
    check_can_send(rt, conv, opted_out=bool(conv.opted_out), address=conv.customer_address)
    # The UPDATE changed no view field (`view_fields`: status, assignee, channel, owner),
    # so the event carries no `previous`, as `reply` leaves it out for a bot's reply.
    item = yield from bot_message(conv, text=text, html=html, meta=meta, now=now,
                                           dialect=dialect)
    if also is not None:
        yield from also
    events = yield from sql.insert_events([item], dialect=dialect)
    return item[2]["message"], events


def bot_message(
    conv: Any, *, text: str, html: str | None, meta: dict[str, Any], now: datetime,
    dialect: str,
) -> sqlrun.Plan[tuple[str, int | None, dict[str, Any]]]:
    """A bot's message to the customer of `conv` (the row as `ingest_sql.count_bot_message`
    returned it: the answer counted, its contact's name read), stored pending delivery
    with its outbox row; returns its `message.created` event item (type, conversation id,
    payload with the message and the conversation's summary)."""
    message = yield from insert_outbound(conv, author_kind="bot", text=text, html=html,
                                         private=False, meta=meta, now=now, dialect=dialect)
    yield Query(sql.insert_outbox(), {"message_id": message.id, "now": now})
    summary = conversation_out(conv, contact_name=conv.contact_name, last_message=message)
    return ("message.created", conv.id,
            {"message": message_out(message), "conversation": summary})


def insert_outbound(
    conv: Any, *, author_kind: str, text: str, private: bool, meta: dict[str, Any],
    now: datetime, dialect: str, html: str | None = None,
) -> sqlrun.Plan[Any]:
    """Store an outbound message (a note when `private`, else pending delivery) in `conv`;
    returns it as `message_out` reads it (no ORM object)."""
    params: dict[str, Any] = {
        "conversation_id": conv.id, "channel": conv.channel, "direction": "out",
        "author_kind": author_kind, "author_agent_id": None, "text": text, "html": html,
        "attachments": [], "provider_message_id": None, "thread_message_id": None,
        "delivery_status": None if private else "pending", "error_code": None,
        "error_text": None, "private": private, "flags": [], "meta": meta, "raw": {},
        "created_at": now,
    }
    (row,) = yield Query(sql.insert_message(dialect), params)
    return SimpleNamespace(id=row.id, **params)


async def _check_can_send(
    rt: Runtime, session: AsyncSession, conv: Conversation, *, template: TemplateRef | None
) -> None:
    identity = None
    if conv.identity_id is not None:
        identity = await session.get(Identity, conv.identity_id)
    check_can_send(rt, conv, opted_out=identity is not None and identity.opted_out,
                   address=(identity.raw or identity.value) if identity is not None else None,
                   template=template)


def check_can_send(rt: Runtime, conv: Any, *, opted_out: bool, address: str | None,
                   template: TemplateRef | None = None) -> None:
    """Refuse a message to the customer of `conv` (anything with `channel`, `provider`
    and `last_customer_at`) that may not go out now: `PolicyRefused` when they opted
    out (`opted_out`, their `address` named in the error) on SMS, `Conflict` when the
    channel is not configured or does not allow it now (the WhatsApp window)."""
    # STOP is an SMS rule (carriers enforce it; Twilio error 21610): the same number
    # can still be answered on WhatsApp, where the customer wrote to us.
    if opted_out and conv.channel == "sms":
        raise PolicyRefused(
            f"{address or 'the customer'} has opted out of messages on this channel "
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

