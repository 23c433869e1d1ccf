"""Substring search over conversations and contacts: the WHERE clauses the list
endpoints add when an agent types in the search box.

The agent's text is literal: "100%" or "red_shirt" must not act as wildcards.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, or_, select

from inbox.models import Contact, Conversation, Identity, Message


def like_escape(text: str) -> str:
    """`text` with LIKE's wildcards escaped (use with `escape="\\"`)."""
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def _pattern(search: str) -> str:
    return "%" + like_escape(search.strip().lower()) + "%"


def contact_ids_matching(search: str) -> Any:
    """A SELECT of the ids of contacts whose name or any address contains `search`."""
    like = _pattern(search)
    return (
        select(Identity.contact_id).where(func.lower(Identity.value).like(like, escape="\\"))
        .union(select(Contact.id).where(func.lower(Contact.name).like(like, escape="\\")))
    )


def conversation_clause(search: str) -> Any:
    """A condition true for conversations whose contact, subject or any message text
    contains `search` (case-insensitive)."""
    like = _pattern(search)
    message_match = select(Message.conversation_id).where(
        func.lower(Message.text).like(like, escape="\\"))
    return or_(
        Conversation.contact_id.in_(contact_ids_matching(search)),  # type: ignore[attr-defined]
        Conversation.id.in_(message_match),  # type: ignore[union-attr]
        func.lower(Conversation.subject).like(like, escape="\\"),
    )


def contact_clause(search: str) -> Any:
    """A condition true for contacts whose name or any address contains `search`."""
    like = _pattern(search)
    return or_(
        func.lower(Contact.name).like(like, escape="\\"),
        Contact.id.in_(select(Identity.contact_id).where(func.lower(Identity.value).like(like, escape="\\"))),  # type: ignore[union-attr]
    )
