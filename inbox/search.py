"""Substring search over conversations and contacts: what the list endpoints run when an
agent types in the search box.

The agent's text is literal ("100%" or "red_shirt" are no wildcards) and matches
case-insensitively anywhere in a message text, a contact's name, any of its addresses
(so the digits "0102030" find "+15550102030") or an email subject. The match itself is
always `lower(column) LIKE '%text%'` (on SQLite the bare column: the same rows, see
`_folded`), so every path below finds exactly the same rows; they differ only in how
many rows they look at:

1. Rare text: the indexes of migration 0005 say how many rows may contain it (counting
   stops at `RARE_HITS`); when few, those candidates are fetched, rechecked and sorted.
   SQLite: FTS5 trigram tables (`message_fts`, ...; a MATCH is a superset of the LIKE),
   plus the newest messages, which join `message_fts` in batches (`inbox.search_index`).
   PostgreSQL: pg_trgm GIN indexes on `lower(column)`, which serve the LIKE itself.
2. Common text: the newest `PROBE_WINDOW` rows of the list (its own index order and
   filters) are tested one by one, and the page fills long before the window ends
   (an index lookup of "order" would return most of 1M messages).
3. Neither (many hits, few of them recent): the candidates from the index after all.

Fewer than 3 characters make no trigram: those, and a database without the indexes
(SQLite without FTS5 trigram, PostgreSQL without the extension), probe and then scan.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable, Sequence
from typing import Any, ClassVar, TypeVar

from sqlalchemy import (
    Integer,
    String,
    and_,
    bindparam,
    column,
    desc,
    exists,
    func,
    literal_column,
    or_,
    select,
    text,
    union,
)
from sqlalchemy import table as table_clause
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql import ColumnElement, Select
from sqlalchemy.sql.functions import FunctionElement
from sqlalchemy.sql.sqltypes import NullType
from sqlalchemy.sql.visitors import InternalTraversal
from sqlmodel.ext.asyncio.session import AsyncSession

from inbox import search_index
from inbox.models import Contact, Conversation, Identity, Message

# Rows of the list tested one by one for a common text. A page of 50 fills inside it when
# one conversation in 20 matches; the whole window costs ~15 ms (1,000 rows, ~10
# messages each), paid in full only by text common overall but rare lately.
PROBE_WINDOW = 1000
# The trigram tokenizer and pg_trgm index three characters; shorter text scans. (SQLite
# 3.40's FTS5 also answers a 2-character non-ASCII LIKE wrongly: "안녕" found nothing.)
MIN_INDEXED = 3
# (table, column) pairs searched, and their indexes (web/migrations/versions/0005_*.py).
SEARCHED = (("message", "text"), ("contact", "name"), ("identity", "value"),
            ("conversation", "subject"))
FTS_TABLES = tuple(f"{table}_fts" for table, _ in SEARCHED)
# SQLite: tables whose newest rows join their index in batches (`inbox.search_index`).
BATCH_INDEXED = frozenset(table for table, _ in search_index.DEFERRED)
TRGM_INDEXES = tuple(f"ix_{table}_{col}_trgm" for table, col in SEARCHED)
# Fewer index hits than this (in all four tables): fetch them all and sort. Costs ~5 us
# a hit; a common word has more and is found by the probe instead.
RARE_HITS = 2000

T = TypeVar("T")

# Per engine: which search index its database has (looked up once, see `index_kind`).
_index_kind: weakref.WeakKeyDictionary[Any, str | None] = weakref.WeakKeyDictionary()


def like_escape(text: str) -> str:
    """`text` with LIKE's wildcards escaped (use with `escape="\\"`)."""
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def _pattern(search: str) -> str:
    return "%" + like_escape(search.strip().lower()) + "%"


class _folded(FunctionElement[str]):
    """`lower(column)` as the search compares it. SQLite's lower() and its LIKE both fold
    ASCII only, so there `lower(c) LIKE p` (p already lower case) and `c LIKE p` match
    the same rows, and the bare column scans twice as fast (1M messages: 320 -> 145 ms).
    PostgreSQL's LIKE is case-sensitive, and its trigram indexes are on lower(column)."""

    name = "lower"
    inherit_cache = True
    type = String()


@compiles(_folded)
def _folded_lower(element: _folded, compiler: Any, **kw: Any) -> str:
    return f"lower({compiler.process(element.clauses, **kw)})"


@compiles(_folded, "sqlite")
def _folded_sqlite(element: _folded, compiler: Any, **kw: Any) -> str:
    return str(compiler.process(element.clauses, **kw))


class _short_match(ColumnElement[Any]):
    """`col` contains `needle` (1-2 characters, lower case), written so no trigram index
    is offered it: with no trigram to look up, PostgreSQL's planner still picked the
    pg_trgm index for `LIKE '%zq%'` and rechecked all 1M rows (915 ms; a plain scan takes
    half that). `strpos(lower(col), needle) > 0` is the same test."""

    inherit_cache = True
    type = NullType()  # not Boolean: SQLite would append "= 1"
    # The column and both bound values take part in the statement cache key.
    _traverse_internals: ClassVar[Any] = [
        ("col", InternalTraversal.dp_clauseelement),
        ("needle", InternalTraversal.dp_clauseelement),
        ("pattern", InternalTraversal.dp_clauseelement),
    ]

    def __init__(self, col: Any, needle: str) -> None:
        self.col = col
        self.needle = bindparam(None, needle, unique=True)
        self.pattern = bindparam(None, _pattern(needle), unique=True)


@compiles(_short_match)
def _short_match_strpos(element: _short_match, compiler: Any, **kw: Any) -> str:
    return str(compiler.process(func.strpos(func.lower(element.col), element.needle) > 0, **kw))


@compiles(_short_match, "sqlite")
def _short_match_sqlite(element: _short_match, compiler: Any, **kw: Any) -> str:
    return str(compiler.process(_folded(element.col).like(element.pattern, escape="\\"), **kw))


def _like(col: Any, search: str) -> Any:
    if len(search.strip()) < MIN_INDEXED:
        return _short_match(col, search.strip().lower())
    return _folded(col).like(_pattern(search), escape="\\")


# ---------------------------------------------------------------------------- scan clauses


def contact_ids_matching(search: str) -> Any:
    """A SELECT of the ids of contacts whose name or any address contains `search`."""
    return (
        select(Identity.contact_id).where(_like(Identity.value, search))
        .union(select(Contact.id).where(_like(Contact.name, search)))
    )


def conversation_clause(search: str) -> Any:
    """A condition true for conversations whose contact, subject or any message text
    contains `search` (case-insensitive). On PostgreSQL the trigram indexes serve it."""
    message_match = select(Message.conversation_id).where(_like(Message.text, search))
    return or_(
        Conversation.contact_id.in_(contact_ids_matching(search)),  # type: ignore[attr-defined]
        Conversation.id.in_(message_match),  # type: ignore[union-attr]
        _like(Conversation.subject, search),
    )


def contact_clause(search: str) -> Any:
    """A condition true for contacts whose name or any address contains `search`."""
    return or_(
        _like(Contact.name, search),
        Contact.id.in_(select(Identity.contact_id).where(_like(Identity.value, search))),  # type: ignore[union-attr]
    )


# ---------------------------------------------------------------------------- row tests


def _conversation_row_test(search: str, conv: Any) -> Any:
    """The same condition for one row `conv`, as correlated lookups by its keys."""
    return or_(
        exists().where(Message.conversation_id == conv.id, _like(Message.text, search)),
        _like(conv.subject, search),
        exists().where(Contact.id == conv.contact_id, _like(Contact.name, search)),
        exists().where(Identity.contact_id == conv.contact_id, _like(Identity.value, search)),
    )


def _contact_row_test(search: str, contact: Any) -> Any:
    return or_(
        _like(contact.name, search),
        exists().where(Identity.contact_id == contact.id, _like(Identity.value, search)),
    )


# ---------------------------------------------------------------------------- FTS5 (SQLite)


def _fts_phrase(search: str) -> str:
    # One FTS5 string: everything inside is literal, a double quote is written twice.
    return '"' + search.strip().replace('"', '""') + '"'


def _fts_rowids(table: str, search: str) -> Any:
    """A SELECT of the rowids whose indexed text contains `search` (and maybe more: the
    trigram index folds case over all of Unicode, LIKE only over ASCII)."""
    assert table in FTS_TABLES
    return (text(f"SELECT rowid FROM {table} WHERE {table} MATCH :phrase")
            .bindparams(phrase=_fts_phrase(search)).columns(column("rowid", Integer)))


def _matching(model: Any, col: Any, table: str, search: str, kind: str | None) -> Any:
    """Rows of `model` whose `col` contains `search`: the LIKE, which pg_trgm serves, and
    on SQLite narrowed first by the FTS5 index (MATCH is a superset: it folds case over
    all of Unicode, SQLite's lower() only ASCII)."""
    cond = _like(col, search)
    if kind == "fts":
        indexed = model.id.in_(_fts_rowids(f"{table}_fts", search))
        if table in BATCH_INDEXED:  # and the newest rows, which their batch may not have reached
            indexed = or_(indexed, search_index.unindexed(model.id, table))
        cond = and_(indexed, cond)
    return cond


def _indexed_contact_ids(search: str, kind: str | None) -> Any:
    return union(
        select(Identity.contact_id).where(_matching(Identity, Identity.value, "identity", search, kind)),
        select(Contact.id).where(_matching(Contact, Contact.name, "contact", search, kind)),
    )


def _indexed_conversation_clause(search: str, kind: str | None) -> Any:
    # Candidate ids first (each an index lookup), then the list's filters and order on
    # those few rows: an OR of IN-lists would walk the whole list checking each row.
    ids = union(
        select(Message.conversation_id).where(_matching(Message, Message.text, "message", search, kind)),
        select(Conversation.id).where(
            _matching(Conversation, Conversation.subject, "conversation", search, kind)).correlate(None),
        select(Conversation.id).where(
            Conversation.contact_id.in_(_indexed_contact_ids(search, kind))).correlate(None),  # type: ignore[attr-defined]
    )
    return Conversation.id.in_(ids)  # type: ignore[union-attr]


def _indexed_contact_clause(search: str, kind: str | None) -> Any:
    return Contact.id.in_(_indexed_contact_ids(search, kind).subquery().select())  # type: ignore[union-attr]


async def index_kind(session: AsyncSession) -> str | None:
    """Which search index this database has: "fts" (SQLite with migration 0005's FTS5
    tables), "trgm" (PostgreSQL with its pg_trgm indexes) or None (searched by scanning:
    a SQLite without FTS5 trigram, a PostgreSQL without the extension). Looked up once
    per engine."""
    bind = session.bind
    if bind is None:
        return None
    engine = getattr(bind, "engine", bind)
    if engine in _index_kind:
        return _index_kind[engine]
    if bind.dialect.name == "sqlite":
        names = ", ".join(f"'{t}'" for t in FTS_TABLES)
        sql, kind = f"SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name IN ({names})", "fts"
    else:
        names = ", ".join(f"'{t}'" for t in TRGM_INDEXES)
        sql, kind = f"SELECT count(*) FROM pg_indexes WHERE indexname IN ({names})", "trgm"
    result = await session.exec(text(sql))  # type: ignore[call-overload]
    found = kind if int(result.scalar() or 0) == len(FTS_TABLES) else None
    _index_kind[engine] = found
    return found


def _hit_counts(search: str, kind: str, cap: int, tables: Sequence[str]) -> Any:
    """A SELECT of how many rows of `tables` (up to `cap` per table) the index says may
    contain `search`."""
    parts = []
    for table, col in SEARCHED:
        if table not in tables:
            continue
        if kind == "fts":
            fts = f"{table}_fts"
            hits = select(literal_column("rowid")).select_from(table_clause(fts)).where(
                literal_column(fts).op("MATCH")(_fts_phrase(search)))
        else:
            hits = select(literal_column("1")).select_from(table_clause(table)).where(
                _like(literal_column(f'"{table}"."{col}"'), search))
        parts.append(select(func.count()).select_from(hits.limit(cap).subquery()).scalar_subquery())
    return select(sum(parts[1:], parts[0]))


# ---------------------------------------------------------------------------- the searches


def _at_or_after(keys: Sequence[Any], boundary: Sequence[Any]) -> Any:
    """`keys` (ordered descending) at or before `boundary` in that order, written so an
    index on `keys` serves it as a range."""
    if len(keys) == 1:
        return keys[0] >= boundary[0]
    (k1, k2), (b1, b2) = keys, boundary
    return and_(k1 >= b1, or_(k1 > b1, and_(k1 == b1, k2 >= b2)))


async def _search(
    session: AsyncSession, query: Select[Any], *, search: str, entity: type[T],
    keys: Callable[[Any], Sequence[Any]], row_test: Any, indexed: Any, kind: str | None,
    tables: Sequence[str], limit: int, probe_window: int, rare_hits: int,
) -> list[T]:
    ordered = [desc(k) for k in keys(entity)]
    if kind is not None:
        # Few candidate rows in the index: fetch them all and sort, whatever their age.
        result = await session.exec(_hit_counts(search, kind, rare_hits, tables))  # type: ignore[call-overload]
        if int(result.scalar() or 0) < rare_hits:
            result = await session.exec(query.where(indexed).order_by(*ordered).limit(limit))  # type: ignore[call-overload]
            return list(result.scalars().all())
    # Many candidates (or no index): test the newest rows one by one, in the list's index
    # order, up to the `probe_window`-th row; a common word fills the page long before.
    result = await session.exec(  # type: ignore[call-overload]
        query.with_only_columns(*keys(entity)).order_by(*ordered).offset(probe_window - 1).limit(1))
    boundary = result.first()
    probe = query.where(row_test)
    if boundary is not None:
        probe = probe.where(_at_or_after(keys(entity), tuple(boundary)))
    result = await session.exec(probe.order_by(*ordered).limit(limit))  # type: ignore[call-overload]
    found = list(result.scalars().all())
    if len(found) >= limit or boundary is None:
        return found
    # The page is not full inside the window: the rest comes from the index (or a scan).
    result = await session.exec(query.where(indexed).order_by(*ordered).limit(limit))  # type: ignore[call-overload]
    return list(result.scalars().all())


async def newest_conversations(
    session: AsyncSession, query: Select[Any], *, search: str, limit: int,
    probe_window: int = PROBE_WINDOW, rare_hits: int = RARE_HITS,
) -> list[Conversation]:
    """The first `limit` conversations of `query` (a SELECT of Conversation with its
    filters and keyset cursor, not yet ordered), newest activity first, that match
    `search` (see the module docstring; `probe_window` and `rare_hits` tune the path
    taken, never the result)."""
    kind = await index_kind(session) if len(search.strip()) >= MIN_INDEXED else None
    indexed = _indexed_conversation_clause(search, kind)
    return await _search(
        session, query, search=search, entity=Conversation,
        keys=lambda c: (c.last_activity_at, c.id), row_test=_conversation_row_test(search, Conversation),
        indexed=indexed, kind=kind, tables=("message", "contact", "identity", "conversation"),
        limit=limit, probe_window=probe_window, rare_hits=rare_hits)


async def newest_contacts(
    session: AsyncSession, query: Select[Any], *, search: str, limit: int,
    probe_window: int = PROBE_WINDOW, rare_hits: int = RARE_HITS,
) -> list[Contact]:
    """The first `limit` contacts of `query` (a SELECT of Contact with its filters, not yet
    ordered), newest first, whose name or any address contains `search` (the same
    rows whatever `probe_window` and `rare_hits`)."""
    kind = await index_kind(session) if len(search.strip()) >= MIN_INDEXED else None
    indexed = _indexed_contact_clause(search, kind)
    return await _search(
        session, query, search=search, entity=Contact, keys=lambda c: (c.id,),
        row_test=_contact_row_test(search, Contact), indexed=indexed, kind=kind,
        tables=("contact", "identity"), limit=limit, probe_window=probe_window,
        rare_hits=rare_hits)
