"""Canned responses: saved replies an agent drops into the composer by typing `/shortcut`.

    parse_canned(data)            pure: validate one response (BadInput with every reason)
    list_canned(session, q=...)   filtered by shortcut, title or text; shortcut matches first
    create_canned / update_canned / delete_canned   one transaction each (admins only, by route)

A shortcut is unique (case-folded); a second one with the same shortcut is a `Conflict`.
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any

from sqlalchemy import func, or_, select
from sqlalchemy.exc import IntegrityError
from sqlmodel import Field, SQLModel, col
from sqlmodel.ext.asyncio.session import AsyncSession

from inbox import store
from inbox.db import UTCDateTime
from inbox.errors import BadInput, Conflict, NotFound
from inbox.runtime import Runtime
from inbox.types import utcnow

MAX_SHORTCUT = 50
MAX_TITLE = 200
MAX_TEXT = 5000  # a long email answer fits; SMS/WhatsApp segmenting is the composer's job
_SHORTCUT = re.compile(r"^[a-z0-9][a-z0-9_.-]*$")


class CannedResponse(SQLModel, table=True):
    """One saved reply. `shortcut` is what follows the slash in the composer."""

    __tablename__ = "canned_response"
    id: int | None = Field(default=None, primary_key=True)
    shortcut: str = Field(max_length=MAX_SHORTCUT, unique=True)
    title: str = Field(max_length=MAX_TITLE)
    text: str
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    updated_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)


def canned_out(row: CannedResponse) -> dict[str, Any]:
    """The public, JSON-safe shape of a canned response."""
    return {"id": row.id, "shortcut": row.shortcut, "title": row.title, "text": row.text,
            "created_at": row.created_at.isoformat(), "updated_at": row.updated_at.isoformat()}


def parse_canned(data: dict[str, Any], *, partial: bool = False) -> dict[str, str]:
    """The clean fields of a canned response, or `BadInput` listing every problem in
    `extra["reasons"]`. With `partial`, absent fields are left out (an update).

    The shortcut is case-folded, one word (letters, digits, `_`, `-`, `.`), without the
    leading slash (a pasted "/shipping" is accepted); the title defaults to the shortcut.
    """
    if not isinstance(data, dict):
        raise BadInput("a canned response is a JSON object")
    reasons: list[str] = []
    fields: dict[str, str] = {}
    if "shortcut" in data or not partial:
        raw = data.get("shortcut")
        if not isinstance(raw, str) or not raw.strip().lstrip("/"):
            reasons.append('"shortcut" is required (one word, e.g. "shipping")')
        else:
            shortcut = raw.strip().lstrip("/").casefold()
            if len(shortcut) > MAX_SHORTCUT:
                reasons.append(f'"shortcut" is at most {MAX_SHORTCUT} characters, got {len(shortcut)}')
            elif not _SHORTCUT.match(shortcut):
                reasons.append(f'"shortcut" may hold only letters, digits, "_", "-" and ".", '
                               f'and no spaces; got {raw!r}')
            else:
                fields["shortcut"] = shortcut
    if "title" in data:
        title = data.get("title")
        if title is not None and not isinstance(title, str):
            reasons.append(f'"title" must be text, got {type(title).__name__}')
        elif title and len(" ".join(title.split())) > MAX_TITLE:
            reasons.append(f'"title" is at most {MAX_TITLE} characters')
        elif title and title.strip():
            fields["title"] = " ".join(title.split())
        elif partial:
            fields["title"] = ""  # cleared: the update falls back to the shortcut
    if "text" in data or not partial:
        text = data.get("text")
        if not isinstance(text, str) or not text.strip():
            reasons.append('"text" is required: what the reply says')
        elif len(text) > MAX_TEXT:
            reasons.append(f'"text" is at most {MAX_TEXT} characters, got {len(text)}')
        else:
            fields["text"] = text.replace("\x00", "").strip()
    if reasons:
        raise BadInput("; ".join(reasons), extra={"reasons": reasons})
    if not partial and "title" not in fields:
        fields["title"] = fields["shortcut"]
    return fields


async def list_canned(session: AsyncSession, *, q: str | None = None,
                      limit: int = 50) -> list[CannedResponse]:
    """Canned responses whose shortcut, title or text contains `q` (any case).

    Shortcuts starting with `q` come first (typing "/ship" wants "shipping" before a
    response that merely mentions shipping), then by shortcut.
    """
    query = select(CannedResponse)
    needle = (q or "").strip().lstrip("/").casefold()
    if needle:
        like = "%" + store.like_escape(needle) + "%"
        query = query.where(or_(
            func.lower(col(CannedResponse.shortcut)).like(like, escape="\\"),
            func.lower(col(CannedResponse.title)).like(like, escape="\\"),
            func.lower(col(CannedResponse.text)).like(like, escape="\\"),
        ))
    result = await session.exec(query.order_by(col(CannedResponse.shortcut)))  # type: ignore[call-overload]
    rows: list[CannedResponse] = list(result.scalars().all())
    rows.sort(key=lambda r: (not r.shortcut.startswith(needle), r.shortcut))
    return rows[:limit]


async def _by_shortcut(session: AsyncSession, shortcut: str) -> CannedResponse | None:
    result = await session.exec(  # type: ignore[call-overload]
        select(CannedResponse).where(col(CannedResponse.shortcut) == shortcut))
    row: CannedResponse | None = result.scalars().first()
    return row


def _taken(shortcut: str) -> Conflict:
    return Conflict(f'the shortcut "/{shortcut}" is already used by another canned response',
                    extra={"reason": "duplicate_shortcut", "reasons": [
                        f'"shortcut": /{shortcut} is already taken'
                    ]})


async def create_canned(rt: Runtime, *, shortcut: str, title: str, text: str) -> dict[str, Any]:
    """Store a new canned response (fields from `parse_canned`); `Conflict` if the
    shortcut is taken (checked first for a clear message; the unique index decides races)."""
    try:
        async with rt.sessions() as session, session.begin():
            if await _by_shortcut(session, shortcut) is not None:
                raise _taken(shortcut)
            row = CannedResponse(shortcut=shortcut, title=title, text=text)
            session.add(row)
            await session.flush()
            return canned_out(row)
    except IntegrityError:
        raise _taken(shortcut) from None


async def update_canned(rt: Runtime, *, canned_id: int, fields: dict[str, str]) -> dict[str, Any]:
    """Change the given fields of one canned response; `NotFound`, or `Conflict` when the
    new shortcut belongs to another."""
    shortcut = fields.get("shortcut")
    try:
        async with rt.sessions() as session, session.begin():
            row = await session.get(CannedResponse, canned_id)
            if row is None:
                raise NotFound(f"canned response {canned_id} does not exist")
            if shortcut is not None and shortcut != row.shortcut:
                other = await _by_shortcut(session, shortcut)
                if other is not None:
                    raise _taken(shortcut)
            for key, value in fields.items():
                setattr(row, key, value)
            if not row.title:
                row.title = row.shortcut
            row.updated_at = utcnow()
            await session.flush()
            return canned_out(row)
    except IntegrityError:
        raise _taken(shortcut or "") from None


async def delete_canned(rt: Runtime, *, canned_id: int) -> None:
    """Remove one canned response; `NotFound` if there is none with this id."""
    async with rt.sessions() as session, session.begin():
        row = await session.get(CannedResponse, canned_id)
        if row is None:
            raise NotFound(f"canned response {canned_id} does not exist")
        await session.delete(row)
