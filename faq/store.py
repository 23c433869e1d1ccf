"""FAQ tables and keyword-only store helpers. The helpers never commit: the caller
(an API handler, the responder, the importer) owns the transaction.

    FaqEntry            faq_entry       one question, its alternates, the answer, stats
    UnansweredQuestion  faq_unanswered  a customer message the bot gave to humans
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Column, Index, bindparam, delete, func, insert, text, update
from sqlmodel import Field, SQLModel, col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from inbox.db import JSONType, UTCDateTime
from inbox.sqlrun import Query
from inbox.types import utcnow

OPEN = "resolved_entry_id IS NULL"


def _json_list() -> Any:
    return Field(default_factory=list, sa_column=Column(JSONType, nullable=False))


class FaqEntry(SQLModel, table=True):
    """One FAQ entry. `channels` empty means every channel; `answer` may be a sandboxed
    Jinja2 template over the customer's latest `order`, with `answer_fallback` for
    customers without one."""

    __tablename__ = "faq_entry"
    id: int | None = Field(default=None, primary_key=True)
    external_id: str | None = Field(default=None, max_length=200, unique=True)
    question: str = Field(max_length=500)
    alternates: list[str] = _json_list()
    answer: str
    answer_fallback: str | None = None
    tags: list[str] = _json_list()
    channels: list[str] = _json_list()
    enabled: bool = True
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    updated_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    auto_answers: int = 0
    handovers_after_answer: int = 0
    last_used_at: datetime | None = Field(default=None, sa_type=UTCDateTime)


class UnansweredQuestion(SQLModel, table=True):
    """A customer message the bot did not answer (handed over or not confident)."""

    __tablename__ = "faq_unanswered"
    # The editor lists the newest open questions: this index holds only those, in order,
    # however many resolved ones pile up (migration 0005).
    __table_args__ = (Index("ix_faq_unanswered_open", "id", sqlite_where=text(OPEN),
                            postgresql_where=text(OPEN)),)
    id: int | None = Field(default=None, primary_key=True)
    message_id: int | None = Field(default=None, foreign_key="message.id", index=True)
    conversation_id: int | None = Field(default=None, foreign_key="conversation.id")
    text: str
    reason: str = Field(max_length=50)
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    resolved_entry_id: int | None = Field(default=None, foreign_key="faq_entry.id", index=True)


# ---------------------------------------------------------------------------- entries


async def list_entries(session: AsyncSession, *, enabled_only: bool = False) -> list[FaqEntry]:
    """Every entry (or every enabled one), oldest first."""
    query = select(FaqEntry).order_by(col(FaqEntry.id))
    if enabled_only:
        query = query.where(col(FaqEntry.enabled).is_(True))
    return list((await session.exec(query)).all())


async def get_entry(session: AsyncSession, *, entry_id: int) -> FaqEntry | None:
    """The entry with this id, or None."""
    return await session.get(FaqEntry, entry_id)


async def entries_by_id(session: AsyncSession, *, entry_ids: Sequence[int]) -> dict[int, FaqEntry]:
    """The entries with these ids that exist, by id (one query)."""
    if not entry_ids:
        return {}
    result = await session.exec(select(FaqEntry).where(col(FaqEntry.id).in_(sorted(set(entry_ids)))))
    return {entry.id or 0: entry for entry in result.all()}


async def entry_by_external_id(session: AsyncSession, *, external_id: str) -> FaqEntry | None:
    """The entry imported under this external id, or None."""
    result = await session.exec(select(FaqEntry).where(col(FaqEntry.external_id) == external_id))
    return result.first()


async def count_entries(session: AsyncSession) -> int:
    """How many entries exist (enabled or not)."""
    result = await session.exec(select(func.count()).select_from(FaqEntry))
    return int(result.one())


async def fingerprint(session: AsyncSession) -> tuple[int, datetime | None]:
    """(entry count, latest updated_at): changes whenever any entry is saved or deleted,
    so a process can tell that another one edited the FAQ."""
    result = await session.exec(
        select(func.count(), func.max(col(FaqEntry.updated_at))).select_from(FaqEntry))
    count, latest = result.one()
    if isinstance(latest, str):  # SQLite's max() loses the column type
        latest = datetime.fromisoformat(latest)
    return int(count), latest


async def save_entry(session: AsyncSession, *, entry: FaqEntry, values: dict[str, Any]) -> FaqEntry:
    """Apply validated `values` to `entry` (new or loaded), stamp it and flush."""
    for key, value in values.items():
        setattr(entry, key, value)
    entry.updated_at = utcnow()
    session.add(entry)
    await session.flush()
    return entry


async def delete_entry(session: AsyncSession, *, entry: FaqEntry) -> None:
    """Delete `entry`; unanswered questions resolved by it become open again."""
    await session.exec(update(UnansweredQuestion)
                       .where(col(UnansweredQuestion.resolved_entry_id) == entry.id)
                       .values(resolved_entry_id=None))
    await session.delete(entry)
    await session.flush()


def answer_count_row(*, entry_id: int) -> Query:
    """The bot answered with this entry: one more auto answer, last used now (one
    statement of the answer's plan, `inbox.sqlrun`)."""
    return Query(_count_answer(), {"entry_id": entry_id, "now": utcnow()})


@functools.cache
def _count_answer() -> Any:
    table: Any = FaqEntry.__table__
    return (update(table).where(table.c.id == bindparam("entry_id"))
            .values(auto_answers=table.c.auto_answers + 1,
                    last_used_at=bindparam("now", type_=table.c.last_used_at.type)))


async def count_handover_after_answer(session: AsyncSession, *, entry_id: int) -> None:
    """The customer said this entry's answer did not help."""
    await session.exec(update(FaqEntry).where(col(FaqEntry.id) == entry_id)
                       .values(handovers_after_answer=col(FaqEntry.handovers_after_answer) + 1))


# ---------------------------------------------------------------------------- unanswered


async def record_unanswered(
    session: AsyncSession, *, message_id: int | None, conversation_id: int | None, text: str,
    reason: str, flush: bool = True,
) -> UnansweredQuestion:
    """Remember a message the bot gave to humans, for the editor's unanswered list.

    `flush=False` leaves the row to the caller's next flush: one pass of the unit of work
    less, and the row has no id until then. (The FAQ responder's hand-over writes it
    with `unanswered_row` instead, a prebuilt statement in the hand-over's plan.)"""
    row = UnansweredQuestion(**_unanswered_values(
        message_id=message_id, conversation_id=conversation_id, text=text, reason=reason))
    session.add(row)
    if flush:
        await session.flush()
    return row


def unanswered_row(
    *, message_id: int | None, conversation_id: int | None, text: str, reason: str,
) -> Query:
    """`record_unanswered` as one statement of a plan (`inbox.sqlrun`), no ORM object."""
    return Query(_insert_unanswered(), _unanswered_values(
        message_id=message_id, conversation_id=conversation_id, text=text, reason=reason))


def _unanswered_values(*, message_id: int | None, conversation_id: int | None, text: str,
                       reason: str) -> dict[str, Any]:
    # Every column but the id (the prebuilt INSERT binds each: no column defaults).
    return {"message_id": message_id, "conversation_id": conversation_id,
            "text": text[:2000], "reason": reason[:50], "created_at": utcnow(),
            "resolved_entry_id": None}


@functools.cache
def _insert_unanswered() -> Any:
    table: Any = UnansweredQuestion.__table__
    return insert(table).values({c.key: bindparam(c.key, type_=c.type)
                                 for c in table.columns if c.key != "id"})


async def open_unanswered(session: AsyncSession, *, limit: int = 1000) -> list[UnansweredQuestion]:
    """Unanswered questions no entry covers yet, newest first."""
    result = await session.exec(
        select(UnansweredQuestion).where(col(UnansweredQuestion.resolved_entry_id).is_(None))
        .order_by(col(UnansweredQuestion.id).desc()).limit(limit))
    return list(result.all())


async def resolve_unanswered(
    session: AsyncSession, *, question_ids: Sequence[int], entry_id: int
) -> None:
    """Mark these questions as covered by `entry_id` (they leave the open list)."""
    if question_ids:
        await session.exec(update(UnansweredQuestion)
                           .where(col(UnansweredQuestion.id).in_(list(question_ids)))
                           .values(resolved_entry_id=entry_id))


async def delete_unanswered(session: AsyncSession, *, question_ids: Sequence[int]) -> None:
    """Forget these questions (the editor dismissed them)."""
    if question_ids:
        await session.exec(delete(UnansweredQuestion)
                           .where(col(UnansweredQuestion.id).in_(list(question_ids))))
