"""Public shapes (what the API and the event stream show), built from table rows.

Nothing outside the core serialises an ORM object: it goes through these.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, TypeAdapter

from inbox.models import Agent, Contact, Conversation, Identity, Message
from inbox.timetext import utc_iso, utc_json


class _Out(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    def dump(self) -> dict[str, Any]:
        """JSON-safe dict (datetimes as ISO strings)."""
        return self.model_dump(mode="json")


class AgentOut(_Out):
    id: int
    email: str
    name: str
    role: str
    is_active: bool


class IdentityOut(_Out):
    id: int
    kind: str
    value: str
    raw: str | None
    opted_out: bool


class ContactOut(_Out):
    id: int
    name: str | None
    created_at: datetime
    identities: list[IdentityOut] = []
    # An email the contact typed in the web chat, not proven theirs (no identity).
    claimed_email: str | None = None


# MessageOut and ConversationOut define the shapes `message_out` and `conversation_out`
# build by hand (tests/inbox/test_schemas_fast.py holds them equal).
class MessageOut(_Out):
    id: int
    conversation_id: int
    channel: str
    direction: str
    author: str  # customer | agent | bot | system
    author_agent_id: int | None
    text: str
    html: str | None
    attachments: list[dict[str, Any]]
    delivery_status: str | None
    error_code: str | None
    error_text: str | None
    private: bool
    flags: list[str]
    meta: dict[str, Any]
    created_at: datetime


class ConversationOut(_Out):
    id: int
    contact_id: int
    contact_name: str | None = None
    channel: str
    provider: str
    our_address: str | None
    customer_address: str | None
    subject: str | None
    status: str
    assignee_id: int | None
    handled_by: str
    snoozed_until: datetime | None
    last_activity_at: datetime
    last_customer_at: datetime | None
    unread_count: int
    created_at: datetime
    last_message: dict[str, Any] | None = None


def agent_out(agent: Agent) -> dict[str, Any]:
    """The public shape of an agent (never the password hash)."""
    return AgentOut.model_validate(agent).dump()


def identity_out(identity: Identity) -> dict[str, Any]:
    """The public shape of one identity."""
    return IdentityOut.model_validate(identity).dump()


def contact_out(contact: Contact, identities: list[Identity]) -> dict[str, Any]:
    """A contact with its identities."""
    out = ContactOut(
        id=contact.id or 0,
        name=contact.name,
        created_at=contact.created_at,
        identities=[IdentityOut.model_validate(i) for i in identities],
        claimed_email=getattr(contact, "claimed_email", None),
    )
    return out.dump()


def message_out(message: Message) -> dict[str, Any]:
    """A message as agents and the event stream see it (raw payload left out): the dict
    `MessageOut(...).dump()` gives, key for key (tests/inbox/test_schemas_fast.py).

    Built by hand: every message's event carries one, and pydantic's validation and
    dump cost ~10 us of the busiest path for values already of their types (table
    columns); datetimes are written as pydantic writes them (`json_time`). A meta
    key that is not a string goes to the model, which refuses it (ValidationError).
    """
    fields = _message_fields(message)
    if not all(type(key) is str for key in message.meta):
        return MessageOut(**fields).dump()
    fields["private"] = bool(fields["private"])
    fields["created_at"] = json_time(fields["created_at"])
    return fields


def _message_fields(message: Message) -> dict[str, Any]:
    # MessageOut's fields in its order, as the message holds them.
    return {
        "id": message.id or 0,
        "conversation_id": message.conversation_id,
        "channel": message.channel,
        "direction": message.direction,
        "author": message.author_kind,
        "author_agent_id": message.author_agent_id,
        "text": message.text,
        "html": message.html,
        "attachments": [_attachment_public(a) for a in message.attachments],
        "delivery_status": message.delivery_status,
        "error_code": message.error_code,
        "error_text": message.error_text,
        "private": message.private,
        "flags": list(message.flags),
        "meta": message.meta,
        "created_at": message.created_at,
    }


def _message_model(message: Message) -> dict[str, Any]:
    """`message` through `MessageOut`, validation and all (what `message_out` equals)."""
    return MessageOut(**_message_fields(message)).dump()


_DATETIME = TypeAdapter(datetime)


def json_time(value: datetime) -> str:
    """`value` as pydantic's JSON mode writes a datetime ("...Z" for UTC)."""
    if value.tzinfo is UTC:
        return utc_json(value)
    return _DATETIME.dump_python(value, mode="json")  # type: ignore[no-any-return]


def _iso(value: datetime) -> str:
    return utc_iso(value) if value.tzinfo is UTC else value.isoformat()


def _json_time_or_none(value: datetime | None) -> str | None:
    return None if value is None else json_time(value)


def _attachment_public(att: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in att.items() if k != "data"}


def conversation_out(
    conversation: Conversation,
    *,
    contact_name: str | None = None,
    last_message: Message | None = None,
) -> dict[str, Any]:
    """A conversation summary, optionally with its contact's name and last message: the
    dict `ConversationOut` dumps, key for key, built by hand as `message_out` is.

    `conversation` is a row or anything else with the conversation's attributes."""
    data = {
        "id": conversation.id,
        "contact_id": conversation.contact_id,
        "contact_name": contact_name,
        "channel": conversation.channel,
        "provider": conversation.provider,
        "our_address": conversation.our_address,
        "customer_address": conversation.customer_address,
        "subject": conversation.subject,
        "status": conversation.status,
        "assignee_id": conversation.assignee_id,
        "handled_by": conversation.handled_by,
        "snoozed_until": _json_time_or_none(conversation.snoozed_until),
        "last_activity_at": json_time(conversation.last_activity_at),
        "last_customer_at": _json_time_or_none(conversation.last_customer_at),
        "unread_count": conversation.unread_count,
        "created_at": json_time(conversation.created_at),
        "last_message": None,
    }
    if last_message is not None:
        data["last_message"] = {
            "id": last_message.id,
            "author": last_message.author_kind,
            "text": last_message.text[:200],
            "private": last_message.private,
            "created_at": _iso(last_message.created_at),
        }
    return data
