"""Table models. Shapes for the API live in `schemas.py`; these never leave the core.

Store helpers (`store.py`) never commit; the pipeline step owns the transaction.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from datetime import datetime
from typing import Any

from sqlalchemy import Column, Index, LargeBinary, UniqueConstraint
from sqlmodel import Field, SQLModel

from inbox.db import JSONType, UTCDateTime
from inbox.types import utcnow


def _factory(make: Callable[[], Any]) -> Callable[[], Any]:
    """`make` as a default factory that pydantic can tell takes no argument cheaply.

    Pydantic asks `inspect.signature` of a field's default factory at every construction
    (does it take the validated data?): ~7 us per factory field, five on a Message. A
    function carrying its own `__signature__` answers at once.
    """

    def factory() -> Any:
        return make()

    factory.__signature__ = inspect.Signature()  # type: ignore[attr-defined]
    return factory


_now = _factory(utcnow)
_FACTORIES = {list: _factory(list), dict: _factory(dict)}


def _ts(**kw: Any) -> Any:
    return Field(default_factory=_now, sa_type=UTCDateTime, **kw)


def _ts_opt(**kw: Any) -> Any:
    return Field(default=None, sa_type=UTCDateTime, **kw)


def _json(default: type[list[Any]] | type[dict[str, Any]]) -> Any:
    return Field(default_factory=_FACTORIES[default], sa_column=Column(JSONType, nullable=False))


class Agent(SQLModel, table=True):
    __tablename__ = "agent"
    id: int | None = Field(default=None, primary_key=True)
    email: str = Field(max_length=320, unique=True, index=True)
    name: str = Field(max_length=200)
    role: str = Field(max_length=20)  # admin | agent | faq_editor
    password_hash: str | None = Field(default=None, max_length=255)
    is_active: bool = True
    created_at: datetime = _ts()


class ApiToken(SQLModel, table=True):
    __tablename__ = "api_token"
    id: int | None = Field(default=None, primary_key=True)
    agent_id: int = Field(foreign_key="agent.id", index=True)
    token_hash: str = Field(max_length=64, unique=True)  # sha256 hex of the token
    name: str = Field(default="cli", max_length=100)
    created_at: datetime = _ts()
    last_used_at: datetime | None = _ts_opt()


class Contact(SQLModel, table=True):
    __tablename__ = "contact"
    id: int | None = Field(default=None, primary_key=True)
    name: str | None = Field(default=None, max_length=200)
    created_at: datetime = _ts()
    updated_at: datetime = _ts()
    merged_into_id: int | None = Field(default=None, foreign_key="contact.id")
    # An email a web-chat visitor typed, unproven: late replies may go there, but it is
    # no identity (it links no orders and joins no other contact; `identify_visitor`).
    claimed_email: str | None = Field(default=None, max_length=320)


class Identity(SQLModel, table=True):
    """One address of a contact: kind + canonical value, unique across contacts."""

    __tablename__ = "identity"
    __table_args__ = (UniqueConstraint("kind", "value", name="uq_identity_kind_value"),)
    id: int | None = Field(default=None, primary_key=True)
    contact_id: int = Field(foreign_key="contact.id", index=True)
    kind: str = Field(max_length=20)   # phone | email | webchat | whatsapp_user
    value: str = Field(max_length=320)  # canonical: E.164, case-folded email, visitor id
    raw: str | None = Field(default=None, max_length=320)
    opted_out: bool = False
    opted_out_at: datetime | None = _ts_opt()
    created_at: datetime = _ts()


class Conversation(SQLModel, table=True):
    __tablename__ = "conversation"
    __table_args__ = (
        Index("ix_conversation_activity", "last_activity_at", "id"),
        Index("ix_conversation_thread", "contact_id", "channel", "thread_key"),
        Index("ix_conversation_status_activity", "status", "last_activity_at", "id"),
    )
    id: int | None = Field(default=None, primary_key=True)
    contact_id: int = Field(foreign_key="contact.id", index=True)
    # The customer's identity this conversation talks to (opt-out lives there).
    identity_id: int | None = Field(default=None, foreign_key="identity.id", index=True)
    channel: str = Field(max_length=20)
    provider: str = Field(max_length=20)
    thread_key: str = Field(default="", max_length=500)
    our_address: str | None = Field(default=None, max_length=320)
    customer_address: str | None = Field(default=None, max_length=320)
    subject: str | None = Field(default=None, max_length=500)
    status: str = Field(default="open", max_length=20)  # open|pending|snoozed|resolved
    assignee_id: int | None = Field(default=None, foreign_key="agent.id", index=True)
    handled_by: str = Field(default="bot", max_length=10)  # bot | human
    snoozed_until: datetime | None = _ts_opt()
    resolved_at: datetime | None = _ts_opt()
    last_activity_at: datetime = _ts()
    last_customer_at: datetime | None = _ts_opt()
    unread_count: int = 0
    bot_answers: int = 0
    created_at: datetime = _ts()


class Message(SQLModel, table=True):
    __tablename__ = "message"
    __table_args__ = (
        UniqueConstraint("channel", "provider_message_id", name="uq_message_provider_id"),
        Index("ix_message_conversation", "conversation_id", "id"),
    )
    id: int | None = Field(default=None, primary_key=True)
    conversation_id: int = Field(foreign_key="conversation.id")
    channel: str = Field(max_length=20)
    direction: str = Field(max_length=3)  # in | out
    author_kind: str = Field(max_length=10)  # customer | agent | bot | system
    author_agent_id: int | None = Field(default=None, foreign_key="agent.id")
    text: str = ""
    html: str | None = None
    attachments: list[dict[str, Any]] = _json(list)
    provider_message_id: str | None = Field(default=None, max_length=500)
    # Email Message-ID of this message (ours or theirs), for threading.
    thread_message_id: str | None = Field(default=None, max_length=500, index=True)
    delivery_status: str | None = Field(default=None, max_length=20)
    error_code: str | None = Field(default=None, max_length=50)
    error_text: str | None = Field(default=None, max_length=1000)
    private: bool = False
    flags: list[str] = _json(list)
    meta: dict[str, Any] = _json(dict)
    raw: dict[str, Any] = _json(dict)
    created_at: datetime = _ts()


class StoredFile(SQLModel, table=True):
    """Attachment bytes that arrived inline (email); provider-hosted media keep a URL."""

    __tablename__ = "stored_file"
    id: int | None = Field(default=None, primary_key=True)
    message_id: int = Field(foreign_key="message.id", index=True)
    filename: str | None = Field(default=None, max_length=500)
    content_type: str = Field(default="application/octet-stream", max_length=200)
    size: int = 0
    data: bytes = Field(sa_column=Column(LargeBinary, nullable=False))


class Event(SQLModel, table=True):
    """The event log agents replay from; `seq` only grows."""

    __tablename__ = "event"
    seq: int | None = Field(default=None, primary_key=True)
    type: str = Field(max_length=50)
    conversation_id: int | None = Field(default=None, index=True)
    payload: dict[str, Any] = _json(dict)
    created_at: datetime = _ts()


class OutboxRow(SQLModel, table=True):
    """A message waiting to be sent; written in the same transaction as the message."""

    __tablename__ = "outbox"
    __table_args__ = (Index("ix_outbox_due", "state", "next_attempt_at"),)
    id: int | None = Field(default=None, primary_key=True)
    message_id: int = Field(foreign_key="message.id", unique=True)
    state: str = Field(default="pending", max_length=10)  # pending | sending | done | failed
    attempts: int = 0
    next_attempt_at: datetime = _ts()
    lease_until: datetime | None = _ts_opt()
    last_error: str | None = Field(default=None, max_length=1000)
    created_at: datetime = _ts()
    updated_at: datetime = _ts()


class KeyValue(SQLModel, table=True):
    """Small durable state for background workers (IMAP cursor, ...)."""

    __tablename__ = "kv"
    key: str = Field(primary_key=True, max_length=200)
    value: dict[str, Any] = _json(dict)
    updated_at: datetime = _ts()
