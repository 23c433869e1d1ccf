"""Plans on PostgreSQL (`inbox.sqlrun.run`, one greenlet per transaction): the plan's
statements and its async callables share one transaction, which commits only when the
plan returns; a plan that raises or is cancelled leaves nothing and frees its connection."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from sqlalchemy import (
    Column,
    Integer,
    MetaData,
    Table,
    bindparam,
    column,
    event,
    insert,
    select,
    text,
)
from sqlalchemy.exc import DBAPIError, IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from inbox import sqlrun
from inbox.db import JSONType, UTCDateTime, make_engine
from inbox.sqlrun import Plan, Query
from tests.support.backends import postgres_url

pytestmark = pytest.mark.postgres

TYPED = Table("plan_typed", MetaData(), Column("id", Integer, primary_key=True),
              Column("at", UTCDateTime), Column("data", JSONType))
ADD_TYPED = insert(TYPED).values(at=bindparam("at", type_=UTCDateTime()),
                                 data=bindparam("data", type_=JSONType)).returning(
    TYPED.c.id, TYPED.c.at, TYPED.c.data)
READ_TYPED = select(TYPED.c.at, TYPED.c.data).where(TYPED.c.id == 1)
ADD = text("INSERT INTO plan_item (name) VALUES (:name) RETURNING id").columns(
    column("id", Integer))


@pytest.fixture
async def engine() -> AsyncIterator[AsyncEngine]:
    """A PostgreSQL engine as the app makes it (one pooled connection), with one table."""
    eng = make_engine(postgres_url() or "", pool_size=1, max_overflow=0, pool_timeout=5)
    async with eng.begin() as conn:
        await conn.execute(text("DROP TABLE IF EXISTS plan_item"))
        await conn.execute(text("CREATE TABLE plan_item (id SERIAL PRIMARY KEY, name TEXT UNIQUE)"))
        await conn.execute(text("DROP TABLE IF EXISTS plan_typed"))
        await conn.run_sync(TYPED.metadata.create_all)
    try:
        yield eng
    finally:
        async with eng.begin() as conn:
            await conn.execute(text("DROP TABLE IF EXISTS plan_item"))
            await conn.execute(text("DROP TABLE IF EXISTS plan_typed"))
        await eng.dispose()


async def names(engine: AsyncEngine) -> list[str]:
    async with engine.connect() as conn:
        return list((await conn.execute(text("SELECT name FROM plan_item ORDER BY id"))).scalars())


async def count_through(conn: AsyncConnection) -> int:
    """What an ORM lookup in a plan does: await statements on the AsyncConnection."""
    return int((await conn.execute(text("SELECT count(*) FROM plan_item"))).scalar_one())


def add_then_look(*names_: str, then_fail: bool = False) -> Plan[tuple[list[int], int]]:
    ids = []
    for name in names_:
        (row,) = yield Query(ADD, {"name": name})
        ids.append(int(row.id))
    seen = yield count_through  # sees the rows above: the same transaction
    if then_fail:
        raise LookupError("the plan gave up")
    return ids, seen


async def test_a_plan_and_its_async_lookups_share_one_transaction_that_commits_at_the_end(
    engine: AsyncEngine,
) -> None:
    ids, seen = await sqlrun.run(engine, add_then_look("a", "b"))
    assert len(ids) == 2 and seen == 2
    assert await names(engine) == ["a", "b"]


async def test_a_plan_that_raises_leaves_nothing_and_frees_its_connection(
    engine: AsyncEngine,
) -> None:
    with pytest.raises(LookupError):
        await sqlrun.run(engine, add_then_look("a", then_fail=True))
    assert await names(engine) == []
    await sqlrun.run(engine, add_then_look("later"))  # the one connection is back in the pool
    assert await names(engine) == ["later"]


async def test_a_statement_the_database_refuses_raises_its_error_and_rolls_back(
    engine: AsyncEngine,
) -> None:
    with pytest.raises(IntegrityError):
        await sqlrun.run(engine, add_then_look("same", "same"))
    assert await names(engine) == []


async def test_a_cancelled_plan_leaves_nothing_and_frees_its_connection(
    engine: AsyncEngine,
) -> None:
    started = asyncio.Event()

    async def wait_forever(_conn: Any) -> None:
        started.set()
        await asyncio.Event().wait()

    def stuck() -> Plan[None]:
        yield Query(ADD, {"name": "never"})
        yield wait_forever

    task = asyncio.ensure_future(sqlrun.run(engine, stuck()))
    await started.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert await names(engine) == []
    await sqlrun.run(engine, add_then_look("after"))
    assert await names(engine) == ["after"]


async def test_rows_come_back_typed_with_attribute_access(engine: AsyncEngine) -> None:
    at = datetime(2026, 5, 1, 12, 30, tzinfo=timezone(timedelta(hours=2)))
    data = {"text": "hello", "flags": ["a"], "n": 3}

    def typed() -> Plan[tuple[Any, Any]]:
        (added,) = yield Query(ADD_TYPED, {"at": at, "data": data})
        (read,) = yield Query(READ_TYPED)
        return added, read

    added, read = await sqlrun.run(engine, typed())
    assert added.id == 1 and added.at == at and added.at.tzinfo == UTC and added.data == data
    assert (read.at, read.data) == (at, data)


async def test_a_connection_the_server_dropped_fails_its_plan_and_the_next_plan_reconnects(
    engine: AsyncEngine,
) -> None:
    async with engine.connect() as conn:
        pid = int((await conn.execute(text("SELECT pg_backend_pid()"))).scalar_one())
    killer = make_engine(postgres_url() or "", pool_size=1, max_overflow=0)
    try:
        async with killer.connect() as conn:
            await conn.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})
    finally:
        await killer.dispose()
    with pytest.raises(DBAPIError) as failed:
        await sqlrun.run(engine, add_then_look("lost"))
    assert failed.value.connection_invalidated
    await sqlrun.run(engine, add_then_look("after"))
    assert await names(engine) == ["after"]


def _deferring_plan(name: str) -> Plan[int]:
    (row,) = yield Query(ADD, {"name": name})
    yield sqlrun.DEFER_FLUSH
    rows = yield Query(text("SELECT current_setting('synchronous_commit') AS mode")
                       .columns(column("mode")))
    assert rows[0].mode == "off"  # for this transaction only
    return int(row.id)


async def test_a_deferred_flush_commits_then_waits_for_durability_before_answering(
        engine: AsyncEngine) -> None:
    steps: list[str] = []

    def statement(_conn: Any, _cursor: Any, sql: str, *_args: Any) -> None:
        steps.append(sql.split()[0] + (" barrier" if "pg_logical_emit_message(true" in sql else ""))

    def commit(_conn: Any) -> None:
        steps.append("COMMIT")

    sync_engine = engine.sync_engine
    event.listen(sync_engine, "before_cursor_execute", statement)
    event.listen(sync_engine, "commit", commit)
    try:
        new_id = await sqlrun.run(engine, _deferring_plan("durable"))
    finally:
        event.remove(sync_engine, "before_cursor_execute", statement)
        event.remove(sync_engine, "commit", commit)
    # The row is in, the setting did not outlive its transaction, and the barrier ran
    # after the commit, before `run` returned.
    assert steps[-2:] == ["COMMIT", "SELECT barrier"], steps
    assert "SET" in steps and steps.index("SET") < steps.index("COMMIT")
    async with engine.connect() as conn:
        assert (await conn.execute(text("SELECT name FROM plan_item WHERE id = :i"),
                                   {"i": new_id})).scalar() == "durable"
        assert (await conn.execute(text("SHOW synchronous_commit"))).scalar() == "on"

    # The barrier's autocommit did not stay on the pooled connection (one in this pool):
    # the next plan is a transaction again, rolled back when it raises.
    def half_done() -> Plan[None]:
        yield Query(ADD, {"name": "half"})
        raise RuntimeError("changed my mind")

    with pytest.raises(RuntimeError):
        await sqlrun.run(engine, half_done())
    async with engine.connect() as conn:
        assert (await conn.execute(text("SELECT count(*) FROM plan_item WHERE name = 'half'"))
                ).scalar() == 0


async def test_a_deferred_flush_inside_someone_elses_transaction_is_not_granted(
        engine: AsyncEngine) -> None:
    async with engine.begin() as conn:
        with pytest.raises(AssertionError):  # the plan sees synchronous_commit still on
            await sqlrun.run_async(conn, _deferring_plan("inner"))
