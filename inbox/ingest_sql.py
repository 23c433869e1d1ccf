"""The statements of the hot paths (SQLAlchemy Core), each composed once per process:
ingest's, and the bot's hand-over or answer that follows a customer's first message.

A follow-up message takes four statements (the sender's read, the conversation's
UPDATE ... RETURNING, the message's INSERT, the event's INSERT) and a customer's first
message six; the FAQ bot's hand-over four (the conversation's UPDATE ... RETURNING, the
note's and the unanswered question's INSERTs, the events' INSERT), its answer five (the
guarded conversation UPDATE ... RETURNING, the message's and outbox row's INSERTs, the
entry's count, the events' INSERT). Through the ORM each cost 200-300 us of CPU besides
running it (object construction and validation, the unit of work, the identity map):
more than SQLite spends on it. Here they are plain statements with bind parameters; the
engine caches their compiled SQL, and no ORM object is built on the way.
"""

from __future__ import annotations

import functools
from typing import Any

from sqlalchemy import bindparam, func, insert, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from inbox import store
from inbox.events import EventOut, encode_payload
from inbox.models import Contact, Conversation, Identity, Message, OutboxRow, StoredFile
from inbox.sqlrun import DEFER_FLUSH, Plan, Query

contact: Any = Contact.__table__
identity: Any = Identity.__table__
conversation: Any = Conversation.__table__
message: Any = Message.__table__
stored_file: Any = StoredFile.__table__
outbox: Any = OutboxRow.__table__


def _param(name: str, column: Any) -> Any:
    return bindparam(name, type_=column.type)


def _insert(table: Any, *names: str) -> Any:
    # Every value a bind parameter named after its column (none left to column defaults:
    # `inbox.sqlrun`'s one-hop shell runs the compiled statement as it is).
    return insert(table).values({n: _param(n, table.c[n]) for n in names})


def insert_events(items: list[tuple[str, int | None, dict[str, Any]]], *,
                  dialect: str) -> Plan[list[EventOut]]:
    """A plan's events (type, conversation id, payload) in one INSERT, after the event
    lock on PostgreSQL (`store.add_events`: taken after the conversation row's lock, as
    every step does); returns them as published after commit (on SQLite with their
    wire text already made from the stored payload text)."""
    if dialect == "postgresql":
        yield Query(store.EVENT_LOCK)
        yield DEFER_FLUSH  # release the lock at commit, not after the WAL flush
        statement, params, at = store.event_rows(items)
        seqs = [row.seq for row in (yield Query(statement, params))]
        return store.events_out(seqs, items, at)
    # SQLite stores the payloads as the text their frames reuse (one encoding, not two).
    texts = [encode_payload(payload) for _, _, payload in items]
    statement, params, at = store.event_rows(items, texts=texts)
    seqs = [row.seq for row in (yield Query(statement, params))]
    return store.events_out(seqs, items, at, texts=texts)


@functools.cache
def sender(with_thread: bool) -> Any:
    """The identity (`kind`, `value`) with its contact and, `with_thread`, the contact's
    newest conversation on the thread (`channel`, `thread_key`): one round trip.

    Columns: identity_id, contact_id, opted_out, name, contact_created_at,
    merged_into_id [, conv_id, conv_status, conv_last_activity_at, conv_resolved_at,
    conv_subject (None when the thread has no conversation)].
    """
    query = (
        select(identity.c.id.label("identity_id"), identity.c.contact_id, identity.c.opted_out,
               contact.c.name, contact.c.created_at.label("contact_created_at"),
               contact.c.merged_into_id)
        .select_from(identity.join(contact, contact.c.id == identity.c.contact_id))
        .where(identity.c.kind == bindparam("kind"), identity.c.value == bindparam("value"))
    )
    if with_thread:
        other = conversation.alias("other")
        newest = (
            select(func.max(other.c.id))
            .where(other.c.contact_id == identity.c.contact_id,
                   other.c.channel == bindparam("channel"),
                   other.c.thread_key == bindparam("thread_key"))
            .scalar_subquery()
        )
        query = query.add_columns(
            conversation.c.id.label("conv_id"), conversation.c.status.label("conv_status"),
            conversation.c.last_activity_at.label("conv_last_activity_at"),
            conversation.c.resolved_at.label("conv_resolved_at"),
            conversation.c.subject.label("conv_subject"),
        ).outerjoin(conversation, conversation.c.id == newest)
    return query


@functools.cache
def stored_message() -> Any:
    """The message stored under (`channel`, `provider_message_id`): id, its
    conversation and that conversation's contact."""
    return (
        select(message.c.id, message.c.conversation_id, conversation.c.contact_id)
        .select_from(message.join(conversation, conversation.c.id == message.c.conversation_id))
        .where(message.c.channel == bindparam("channel"),
               message.c.provider_message_id == bindparam("provider_message_id"))
    )


@functools.cache
def insert_contact() -> Any:
    """A new contact (`name`, `created_at`, `updated_at`) RETURNING its id."""
    return _insert(contact, "name", "created_at", "updated_at").returning(contact.c.id)


@functools.cache
def insert_identity() -> Any:
    """A new identity (`contact_id`, `kind`, `value`, `raw`, `opted_out`, `created_at`)
    RETURNING its id."""
    return (_insert(identity, "contact_id", "kind", "value", "raw", "opted_out", "created_at")
            .returning(identity.c.id))


@functools.cache
def set_opted_out() -> Any:
    """An identity's (`identity_id`) opt-out state: `opted_out`, `opted_out_at`."""
    return (update(identity).where(identity.c.id == bindparam("identity_id"))
            .values(opted_out=_param("opted_out", identity.c.opted_out),
                    opted_out_at=_param("opted_out_at", identity.c.opted_out_at)))


@functools.cache
def name_contact() -> Any:
    """Give a contact (`contact_id`) that has no name yet `name` (at `now`)."""
    return (update(contact)
            .where(contact.c.id == bindparam("contact_id"), contact.c.name.is_(None))
            .values(name=_param("name", contact.c.name),
                    updated_at=_param("now", contact.c.updated_at)))


@functools.cache
def insert_conversation() -> Any:
    """A new conversation (every column but id) RETURNING the whole row."""
    return _insert(conversation, *CONVERSATION_COLUMNS).returning(*conversation.c)


CONVERSATION_COLUMNS: tuple[str, ...] = tuple(c.key for c in conversation.columns if c.key != "id")


@functools.cache
def touch_conversation(*, customer: bool, reopen: bool, unsnooze: bool, subject: bool) -> Any:
    """A message arrived in conversation `conversation_id`, while its status is still
    `old_status`: activity at `now`; from the customer (not a machine), also their last
    word and one more unread; `reopen` (it was resolved) or `unsnooze` makes it open;
    `subject` fills a missing subject. RETURNING the whole row (no row: the status
    changed since it was read)."""
    now = _param("now", conversation.c.last_activity_at)
    values: dict[str, Any] = {"last_activity_at": now}
    if customer:
        values["last_customer_at"] = _param("now", conversation.c.last_customer_at)
        values["unread_count"] = conversation.c.unread_count + 1
    if reopen or unsnooze:
        values["status"] = "open"
        values["snoozed_until"] = None
    if reopen:
        values["resolved_at"] = None
    if subject:
        values["subject"] = func.coalesce(conversation.c.subject,
                                          _param("subject", conversation.c.subject))
    return (
        update(conversation)
        .where(conversation.c.id == bindparam("conversation_id"),
               conversation.c.status == bindparam("old_status"))
        .values(values)
        .returning(*conversation.c)
    )


@functools.cache
def insert_message(dialect: str) -> Any:
    """A message (every column but id) unless its channel holds its provider id already;
    RETURNING its id (no row then).

    ON CONFLICT DO NOTHING, not a refused INSERT: PostgreSQL logs every unique
    violation as an ERROR, one per retried webhook.
    """
    columns = [c for c in message.columns if c.key != "id"]
    dml = pg_insert if dialect == "postgresql" else sqlite_insert
    return (dml(message).values({c.key: _param(c.key, c) for c in columns})
            .on_conflict_do_nothing(index_elements=["channel", "provider_message_id"])
            .returning(message.c.id))


MESSAGE_COLUMNS: tuple[str, ...] = tuple(c.key for c in message.columns if c.key != "id")


@functools.cache
def insert_stored_file() -> Any:
    """Attachment bytes (`message_id`, `filename`, `content_type`, `size`, `data`)
    RETURNING the file's id."""
    return (_insert(stored_file, "message_id", "filename", "content_type", "size", "data")
            .returning(stored_file.c.id))


@functools.cache
def set_attachments() -> Any:
    """A message's (`message_id`) `attachments` list."""
    return (update(message).where(message.c.id == bindparam("message_id"))
            .values(attachments=_param("attachments", message.c.attachments)))


@functools.cache
def latest_conversation() -> Any:
    """The newest conversation of a contact (`contact_id`) on a thread (`channel`,
    `thread_key`): id, status, last_activity_at, resolved_at, subject (the fields of
    `inbox.threading.ConversationView`, in its order)."""
    return (
        select(conversation.c.id, conversation.c.status, conversation.c.last_activity_at,
               conversation.c.resolved_at, conversation.c.subject)
        .where(conversation.c.contact_id == bindparam("contact_id"),
               conversation.c.channel == bindparam("channel"),
               conversation.c.thread_key == bindparam("thread_key"))
        .order_by(conversation.c.id.desc())
        .limit(1)
    )


@functools.cache
def contact_by_id() -> Any:
    """A contact (`contact_id`): id, name, created_at, merged_into_id."""
    return (select(contact.c.id, contact.c.name, contact.c.created_at, contact.c.merged_into_id)
            .where(contact.c.id == bindparam("contact_id")))


@functools.cache
def identities_of() -> Any:
    """A contact's (`contact_id`) identities, oldest first, as `schemas.IdentityOut` reads
    them."""
    return (select(identity.c.id, identity.c.kind, identity.c.value, identity.c.raw,
                   identity.c.opted_out)
            .where(identity.c.contact_id == bindparam("contact_id"))
            .order_by(identity.c.id))


# ---------------------------------------------------------------------------- hand-over


@functools.cache
def conversation_state(dialect: str) -> Any:
    """A conversation's (`conversation_id`) status and handled_by; on PostgreSQL its row
    stays locked until the transaction ends (the guarded UPDATE after it cannot miss)."""
    query = select(conversation.c.status, conversation.c.handled_by).where(
        conversation.c.id == bindparam("conversation_id"))
    return query.with_for_update() if dialect == "postgresql" else query


def _contact_name() -> Any:
    return (select(contact.c.name).where(contact.c.id == conversation.c.contact_id)
            .scalar_subquery().label("contact_name"))


def _opted_out() -> Any:
    return (select(identity.c.opted_out).where(identity.c.id == conversation.c.identity_id)
            .scalar_subquery().label("opted_out"))


@functools.cache
def hand_over_conversation() -> Any:
    """Give conversation `conversation_id` to people while its status is still
    `old_status` and it is still handled by `old_handled_by`: handled by a human, status
    `new_status`. RETURNING the whole row, its contact's name (`contact_name`) and
    whether its identity opted out (`opted_out`; None without one). No row: the status
    or owner changed since they were read."""
    return (
        update(conversation)
        .where(conversation.c.id == bindparam("conversation_id"),
               conversation.c.status == bindparam("old_status"),
               conversation.c.handled_by == bindparam("old_handled_by"))
        .values(handled_by="human", status=_param("new_status", conversation.c.status))
        .returning(*conversation.c, _contact_name(), _opted_out())
    )


@functools.cache
def count_bot_message(*, while_bot: bool = False) -> Any:
    """The bot says something in conversation `conversation_id` at `now`: one more bot
    answer, activity then; `while_bot`, only while the bot still handles it (an agent
    may have taken it meanwhile). RETURNING the whole row, its contact's name
    (`contact_name`) and whether its identity opted out (`opted_out`). No row: the
    conversation is gone, or (`while_bot`) a person handles it."""
    query = update(conversation).where(conversation.c.id == bindparam("conversation_id"))
    if while_bot:
        query = query.where(conversation.c.handled_by == "bot")
    return (query.values(bot_answers=conversation.c.bot_answers + 1,
                         last_activity_at=_param("now", conversation.c.last_activity_at))
            .returning(*conversation.c, _contact_name(), _opted_out()))


@functools.cache
def insert_outbox() -> Any:
    """A message's (`message_id`) outbox row, due at `now`."""
    now = _param("now", outbox.c.next_attempt_at)
    return insert(outbox).values(
        message_id=_param("message_id", outbox.c.message_id), state="pending", attempts=0,
        next_attempt_at=now, lease_until=None, last_error=None, created_at=now, updated_at=now)
