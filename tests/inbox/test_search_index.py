"""The search box's indexes (migrations 0005, 0006) on a real database, SQLite and PostgreSQL.

Every path of `inbox.search` (the index for rare text, the newest-first probe for
common text, the scan for 1-2 characters or without an index) must find exactly the
rows `lower(column) LIKE '%text%'` finds; the indexes must follow every write (ingest,
edit, delete, merge, split) through triggers or the index itself (on SQLite new
messages join in batches, and are found while they wait), and the plan must use them. Nothing here times anything: speed is `bench/scale_bench.py --only E`.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import delete, desc, event, select, update

from inbox import pipeline, search, search_index, store
from inbox.conversation_ops import split_message
from inbox.merge import merge_contacts
from inbox.models import Contact, Conversation, Message
from inbox.runtime import Runtime
from inbox.types import Inbound, ThreadHints
from tests.conftest import make_settings
from tests.inbox.fast_db import database_url, sqlite_template  # noqa: F401
from tests.support.backends import _reset_postgres, postgres_url
from web.app import build_runtime
from web.migrate import alembic_config, upgrade

_counter = 0


def sms(text: str, *, sender: str, name: str | None = None) -> Inbound:
    global _counter
    _counter += 1
    return Inbound(channel="sms", provider="twilio", provider_message_id=f"SMsearch{_counter}",
                   sender=sender, sender_kind="phone", recipient="+15550009999", text=text,
                   display_name=name)


def mail(text: str, *, sender: str, subject: str) -> Inbound:
    global _counter
    _counter += 1
    mid = f"<search{_counter}@mail.example>"
    return Inbound(channel="email", provider="email", provider_message_id=mid, sender=sender,
                   sender_kind="email", recipient="support@shop.example", text=text,
                   thread=ThreadHints(message_id=mid, subject=subject))


async def conversations(rt: Runtime, q: str, **tuning: int) -> list[int]:
    async with rt.sessions() as session:
        found = await search.newest_conversations(session, select(Conversation), search=q,
                                                  limit=50, **tuning)
    return [c.id or 0 for c in found]


async def contacts(rt: Runtime, q: str, **tuning: int) -> list[int]:
    async with rt.sessions() as session:
        found = await search.newest_contacts(
            session, select(Contact).where(Contact.merged_into_id.is_(None)),  # type: ignore[union-attr]
            search=q, limit=50, **tuning)
    return [c.id or 0 for c in found]


async def scanned(rt: Runtime, q: str) -> list[int]:
    """What the plain LIKE scan finds: the reference every path must agree with."""
    async with rt.sessions() as session:
        result = await session.exec(  # type: ignore[call-overload]
            select(Conversation.id).where(search.conversation_clause(q))
            .order_by(desc(Conversation.last_activity_at), desc(Conversation.id)).limit(50))
        return list(result.scalars().all())


# Each path forced: the default, always the index (when the hits are "rare"), always the
# probe of a 1-row window and then the index, and the probe over everything.
PATHS: tuple[dict[str, int], ...] = (
    {}, {"rare_hits": 10**9}, {"rare_hits": 0, "probe_window": 1},
    {"rare_hits": 0, "probe_window": 10**6})


async def assert_found(rt: Runtime, q: str, expected: set[int]) -> None:
    reference = await scanned(rt, q)
    assert set(reference) == expected, q
    for tuning in PATHS:
        assert await conversations(rt, q, **tuning) == reference, (q, tuning)


@pytest.fixture
async def rt(database_url: str) -> AsyncIterator[Runtime]:  # noqa: F811
    runtime = await build_runtime(make_settings(database_url), migrate_db=False,
                                  responders=lambda s: [])
    try:
        yield runtime
    finally:
        await runtime.drain()
        await runtime.close()


async def test_the_migrated_database_has_its_search_index(rt: Runtime, backend: str) -> None:
    async with rt.sessions() as session:
        assert await search.index_kind(session) == ("fts" if backend == "sqlite" else "trgm")


async def test_a_message_ingested_after_the_migration_is_found_by_every_path(rt: Runtime) -> None:
    parcel = (await pipeline.ingest(rt, sms("Where is my parcel?", sender="+15550102030",
                                            name="Maria Lopez"))).conversation_id
    jacket = (await pipeline.ingest(rt, mail("The jacket is too small", sender="jonas@mail.example",
                                             subject="Exchange of order 1042"))).conversation_id
    await assert_found(rt, "parcel", {parcel})
    await assert_found(rt, "PARCEL", {parcel})
    await assert_found(rt, "maria lo", {parcel})
    await assert_found(rt, "0102030", {parcel})
    await assert_found(rt, "jonas@mail", {jacket})
    await assert_found(rt, "order 1042", {jacket})  # the subject
    await assert_found(rt, "is my parcel", {parcel})
    await assert_found(rt, "nothing like this", set())
    assert await contacts(rt, "0102030") == await contacts(rt, "maria", rare_hits=0, probe_window=1)


async def test_wildcards_and_quotes_stay_literal(rt: Runtime) -> None:
    cotton = (await pipeline.ingest(rt, sms("Is it 100% cotton?", sender="+15550102030"))).conversation_id
    await pipeline.ingest(rt, sms("Is it 1000 cotton?", sender="+15550102031"))
    sku = (await pipeline.ingest(rt, sms("SKU red_shirt please", sender="+15550102032"))).conversation_id
    await pipeline.ingest(rt, sms("SKU redXshirt please", sender="+15550102033"))
    quoted = (await pipeline.ingest(rt, sms('the "blue" one', sender="+15550102034"))).conversation_id
    await assert_found(rt, "100%", {cotton})
    await assert_found(rt, "0% c", {cotton})
    await assert_found(rt, "red_shirt", {sku})
    await assert_found(rt, "%", {cotton})
    await assert_found(rt, "_", {sku})
    await assert_found(rt, '"blue"', {quoted})
    await assert_found(rt, 'e "b', {quoted})
    await assert_found(rt, "\\", set())
    assert await contacts(rt, "%") == []


async def test_one_and_two_character_queries_find_substrings(rt: Runtime) -> None:
    hi = (await pipeline.ingest(rt, sms("Hi there", sender="+15550102030"))).conversation_id
    ok = (await pipeline.ingest(rt, sms("ok thanks", sender="+15550102031"))).conversation_id
    await assert_found(rt, "hi", {hi})
    await assert_found(rt, "k", {ok})
    await assert_found(rt, "x", set())
    assert set(await contacts(rt, "31")) == set(await contacts(rt, "0102031"))


async def test_korean_text_is_found_whatever_its_length(rt: Runtime) -> None:
    korean = (await pipeline.ingest(rt, sms("안녕하세요, 주문 확인 부탁드립니다",
                                            sender="+821012345678", name="김민준"))).conversation_id
    await pipeline.ingest(rt, sms("Hello, please check my order", sender="+15550102030"))
    # Two characters: SQLite 3.40's trigram LIKE found nothing for these; the scan does.
    await assert_found(rt, "안녕", {korean})
    await assert_found(rt, "주문 확인", {korean})
    await assert_found(rt, "김민준", {korean})
    await assert_found(rt, "민준", {korean})
    await assert_found(rt, "부탁드립니다", {korean})


@pytest.mark.parametrize("batched_first", [False, True], ids=["waiting", "batched"])
async def test_edits_deletes_merges_and_splits_keep_the_index_in_step(
        rt: Runtime, batched_first: bool) -> None:
    # On SQLite the messages are edited while they wait for their batch, or after it ran.
    first = await pipeline.ingest(rt, sms("Where is my parcel?", sender="+15550102030", name="Maria"))
    second = await pipeline.ingest(rt, sms("And the invoice too", sender="+15550102030"))
    other = await pipeline.ingest(rt, sms("Do you ship abroad?", sender="+15550102099", name="Noor"))
    if batched_first:
        await search_index.catch_up(rt.engine)
    async with rt.sessions() as session, session.begin():
        await session.exec(update(Message).where(Message.id == first.message_id)  # type: ignore[call-overload,arg-type]
                           .values(text="Where is my package?"))
        await session.exec(update(Contact).where(Contact.id == other.contact_id)  # type: ignore[call-overload,arg-type]
                           .values(name="Noor Haddad"))
    await assert_found(rt, "parcel", set())
    await assert_found(rt, "package", {first.conversation_id})
    await assert_found(rt, "haddad", {other.conversation_id})

    async with rt.sessions() as session, session.begin():
        await session.exec(delete(Message).where(Message.id == second.message_id))  # type: ignore[call-overload,arg-type]
    await assert_found(rt, "invoice", set())

    await merge_contacts(rt, source_id=other.contact_id, target_id=first.contact_id)
    # One person now: either number finds both conversations.
    await assert_found(rt, "0102099", {first.conversation_id, other.conversation_id})
    assert await contacts(rt, "0102099") == [first.contact_id]

    third = await pipeline.ingest(rt, sms("Separate question about gift cards",
                                          sender="+15550102030"))
    split = await split_message(rt, message_id=third.message_id)
    await assert_found(rt, "gift cards", {split["id"]})
    await assert_fts_consistent(rt)


async def assert_fts_consistent(rt: Runtime) -> None:
    """SQLite: once the waiting rows had their batch, each FTS5 index holds exactly the
    tokens of its content table's rows (FTS5's own integrity check, against the content
    table with rank 1)."""
    if rt.engine.dialect.name != "sqlite":
        return
    await search_index.catch_up(rt.engine)
    async with rt.engine.begin() as conn:
        for table in search.FTS_TABLES:
            await conn.exec_driver_sql(
                f"INSERT INTO {table}({table}, rank) VALUES ('integrity-check', 1)")


async def test_rows_without_text_and_unchanged_updates_leave_the_index_consistent(rt: Runtime) -> None:
    silent = await pipeline.ingest(rt, sms("", sender="+15550102030"))  # a picture, no words
    named = await pipeline.ingest(rt, sms("hello there", sender="+15550102031", name="Ada"))
    async with rt.sessions() as session, session.begin():
        await session.exec(update(Message).where(Message.id == silent.message_id)  # type: ignore[call-overload,arg-type]
                           .values(text="now with words"))
        await session.exec(update(Contact).where(Contact.id == named.contact_id)  # type: ignore[call-overload,arg-type]
                           .values(name="Ada"))  # the same name again
        await session.exec(update(Conversation).where(Conversation.id == named.conversation_id)  # type: ignore[call-overload,arg-type]
                           .values(subject="Gift wrapping"))
    await assert_fts_consistent(rt)
    await assert_found(rt, "with words", {silent.conversation_id})
    await assert_found(rt, "ada", {named.conversation_id})
    await assert_found(rt, "gift wrap", {named.conversation_id})
    async with rt.sessions() as session, session.begin():
        await session.exec(update(Conversation).where(Conversation.id == named.conversation_id)  # type: ignore[call-overload,arg-type]
                           .values(subject=None))
        await session.exec(update(Contact).where(Contact.id == named.contact_id)  # type: ignore[call-overload,arg-type]
                           .values(name=""))
    await assert_fts_consistent(rt)
    await assert_found(rt, "gift wrap", set())
    await assert_found(rt, "ada", set())


async def _plans(rt: Runtime, q: str, backend: str) -> list[str]:
    """The query plans of the statements a search runs."""
    statements: list[tuple[str, Any]] = []
    engine = rt.engine.sync_engine

    def record(_conn: Any, _cursor: Any, statement: str, parameters: Any, *_args: Any) -> None:
        statements.append((statement, parameters))

    event.listen(engine, "before_cursor_execute", record)
    try:
        await conversations(rt, q)
    finally:
        event.remove(engine, "before_cursor_execute", record)
    plans = []
    async with rt.engine.connect() as conn:
        if backend == "postgres":
            # A handful of rows is cheaper to scan; say what the index can serve.
            await conn.exec_driver_sql("SET enable_seqscan = off")
        for statement, parameters in statements:
            prefix = "EXPLAIN QUERY PLAN " if backend == "sqlite" else "EXPLAIN "
            rows = (await conn.exec_driver_sql(prefix + statement, parameters)).all()
            plans.append("\n".join(str(row[-1]) for row in rows))
    return plans


async def test_the_search_plan_uses_the_index(rt: Runtime, backend: str) -> None:
    for i in range(30):
        await pipeline.ingest(rt, sms(f"Where is my order number {i}?", sender=f"+1555010{i:04d}"))
    plans = "\n".join(await _plans(rt, "warranty", backend))
    if backend == "sqlite":
        assert "message_fts VIRTUAL TABLE" in plans and "contact_fts VIRTUAL TABLE" in plans
        assert "SCAN message\n" not in plans + "\n"
    else:
        assert "ix_message_text_trgm" in plans and "ix_identity_value_trgm" in plans
        assert "Seq Scan on message" not in plans


async def test_migration_back_fills_existing_rows_and_downgrades(backend: str, tmp_path: Path) -> None:
    from alembic import command

    if backend == "sqlite":
        url = f"sqlite+aiosqlite:///{tmp_path / 'inbox.db'}"
    else:
        url = postgres_url() or ""
        await _reset_postgres(url)
    await asyncio.to_thread(upgrade, url, "0004_canned_merges")

    async def session_run(check: Any) -> Any:
        runtime = await build_runtime(make_settings(url), migrate_db=False, responders=lambda s: [])
        try:
            return await check(runtime)
        finally:
            await runtime.drain()
            await runtime.close()

    async def seed(r: Runtime) -> int:
        return (await pipeline.ingest(r, sms("Is the warranty still valid?", sender="+15550102030",
                                             name="Old Customer"))).conversation_id

    async def probe(r: Runtime) -> tuple[str | None, list[int], list[int]]:
        async with r.sessions() as session:
            kind = await search.index_kind(session)
        return kind, await conversations(r, "warranty"), await conversations(r, "old cust")

    old = await session_run(seed)
    await asyncio.to_thread(upgrade, url)
    assert await session_run(probe) == ("fts" if backend == "sqlite" else "trgm", [old], [old])
    await asyncio.to_thread(command.downgrade, alembic_config(url), "0004_canned_merges")
    assert await session_run(probe) == (None, [old], [old])  # scanned, same rows
    await asyncio.to_thread(upgrade, url)
    assert await session_run(probe) == ("fts" if backend == "sqlite" else "trgm", [old], [old])
    if backend == "postgres":
        await _reset_postgres(url)  # the fast fixture re-migrates a schema not at head


async def test_store_list_conversations_searches_with_filters_and_cursor(rt: Runtime) -> None:
    ids = [(await pipeline.ingest(rt, sms(f"warranty claim {i}", sender=f"+1555020{i:04d}"))).conversation_id
           for i in range(5)]
    async with rt.sessions() as session:
        page = await store.list_conversations(session, search="warranty", limit=2)
        assert [c.id for c in page] == ids[::-1][:2]
        rest = await store.list_conversations(session, search="warranty", limit=10,
                                              before=(page[-1].last_activity_at, page[-1].id or 0))
        assert [c.id for c in rest] == ids[::-1][2:]
        assert await store.list_conversations(session, search="warranty", status="resolved") == []


async def test_a_two_character_search_is_not_offered_the_trigram_index(rt: Runtime, backend: str) -> None:
    # No trigram to look up: PostgreSQL's planner still took the pg_trgm index for
    # LIKE '%zq%' and rechecked every row. Even with sequential scans discouraged, the
    # short search must leave the index alone (and SQLite must not ask FTS5).
    for i in range(30):
        await pipeline.ingest(rt, sms(f"Where is my order number {i}?", sender=f"+1555010{i:04d}"))
    plans = "\n".join(await _plans(rt, "zq", backend))
    assert "trgm" not in plans and "_fts" not in plans
    assert await conversations(rt, "zq") == []


async def mark(rt: Runtime) -> int:
    async with rt.engine.connect() as conn:
        found = await conn.exec_driver_sql(
            "SELECT indexed_upto FROM search_index_state WHERE tbl = 'message'")
        return int(found.scalar_one())


async def test_new_messages_are_found_before_and_after_their_batch(rt: Runtime, backend: str) -> None:
    before = await pipeline.ingest(rt, sms("The zebra-striped scarf arrived torn",
                                           sender="+15550102030"))
    if backend == "sqlite":
        assert await mark(rt) < before.message_id  # not in the index yet
    await assert_found(rt, "zebra-striped", {before.conversation_id})
    assert await search_index.catch_up(rt.engine) >= (1 if backend == "sqlite" else 0)
    if backend == "sqlite":
        assert await mark(rt) == before.message_id
    await assert_found(rt, "zebra-striped", {before.conversation_id})
    assert await search_index.catch_up(rt.engine) == 0  # nothing new
    await assert_fts_consistent(rt)


async def test_batches_cover_every_row_in_order(rt: Runtime, backend: str) -> None:
    ids = [(await pipeline.ingest(rt, sms(f"umbrella question {i}", sender=f"+1555030{i:04d}"))).message_id
           for i in range(7)]
    went_over = await search_index.catch_up(rt.engine, batch=3)  # SQLite: batches of 3, 3, 1
    if backend == "sqlite":
        assert went_over >= 7 and await mark(rt) == max(ids)
    else:
        assert went_over == 0  # pg_trgm keeps its own index
    await assert_fts_consistent(rt)
    assert len(await conversations(rt, "umbrella", rare_hits=10**9)) == 7


async def test_a_new_row_under_the_mark_is_indexed_at_once(rt: Runtime, backend: str) -> None:
    kept = await pipeline.ingest(rt, sms("First note about a lamp", sender="+15550102030"))
    newest = await pipeline.ingest(rt, sms("Second note about a lamp", sender="+15550102030"))
    await search_index.catch_up(rt.engine)
    async with rt.sessions() as session, session.begin():
        await session.exec(delete(Message).where(Message.id == newest.message_id))  # type: ignore[call-overload,arg-type]
    again = await pipeline.ingest(rt, sms("A turquoise kettle instead", sender="+15550102030"))
    await assert_found(rt, "turquoise", {kept.conversation_id})
    if backend == "sqlite":
        # SQLite gave the new row the deleted newest id, which is under the mark: the
        # index has it already, no batch will.
        assert again.message_id == newest.message_id <= await mark(rt)
        async with rt.engine.begin() as conn:
            hits = await conn.exec_driver_sql(
                "SELECT rowid FROM message_fts WHERE message_fts MATCH '\"turquoise\"'")
            assert [r[0] for r in hits] == [again.message_id]
    await assert_fts_consistent(rt)


async def test_the_server_indexes_in_the_background(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'inbox.db'}"
    await asyncio.to_thread(upgrade, url)
    runtime = await build_runtime(make_settings(url), migrate_db=False, responders=lambda s: [])
    indexer = search_index.SearchIndexer(runtime.engine, interval=0.01)
    indexer.start()
    try:
        sent = await pipeline.ingest(runtime, sms("A saffron coloured teapot", sender="+15550102030"))
        for _ in range(500):
            if await mark(runtime) >= sent.message_id:
                break
            await asyncio.sleep(0.01)
        assert await mark(runtime) == sent.message_id
        late = await pipeline.ingest(runtime, sms("And a saffron cup", sender="+15550102030"))
    finally:
        await indexer.stop()  # indexes what waits
        assert await mark(runtime) == late.message_id
        await runtime.drain()
        await runtime.close()
