"""Run a transaction written as a plan: a generator that yields the statements it needs
and receives their rows (a pure core with thin I/O shells, as python-websockets does).

    def plan() -> Plan[int]:
        rows = yield Query(statement, {"id": 7})
        ...
        return result

Two shells run a plan, with one behaviour:

    run_async(conn, plan, ...)   any backend: each statement through SQLAlchemy on an
                                 AsyncConnection; a plan may also yield an async callable
                                 (a lookup through the ORM), awaited with `arg`
    run_one_hop(engine, plan)    SQLite (aiosqlite): the whole plan, its commit included,
                                 in one call on the connection's own thread
    run(engine, plan)            a transaction of its own: one hop when the engine can
                                 (and the plan allows), else statement by statement
                                 (PostgreSQL); every step runs its plans through this

Why the second: on SQLite each statement through SQLAlchemy's async adapter cost ~200 us
of event-loop CPU (a greenlet, a thread hop, cursor and result wrapping) against ~10 us
for SQLite to run it; a follow-up message's four statements and commit were most of
ingest's CPU. The one-hop shell runs statements built once (`functools.cache`d Core or
text statements with bind parameters only), compiled once per dialect, with
SQLAlchemy's own type processors for parameters and results. Listeners of the engine's
`before_cursor_execute` and `commit` events still hear of each statement and commit
(with no execution context: none exists).
"""

from __future__ import annotations

import sqlite3
from collections import namedtuple
from collections.abc import Callable, Generator, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

from sqlalchemy import exc as sa_exc
from sqlalchemy.engine import Connection, Dialect, Engine
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine
from sqlalchemy.util import greenlet_spawn

from inbox.db import _ONE_HOP_FITS as ONE_HOP_FITS
from inbox.db import _OneHopConnection

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Query:
    """One statement of a plan and its parameters; the plan receives its rows (a list of
    rows with attribute access by column name; empty for a statement without rows)."""

    statement: Any
    params: Mapping[str, Any] | None = None


# A plan yields Query (answered with a list of rows) or an async callable taking the
# shell's `arg` (answered with its result: only `run_async` takes those).
Plan = Generator[Any, Any, T]


async def run_async(conn: AsyncConnection, plan: Plan[T], arg: Any = None) -> T:
    """Run `plan` on `conn` (in the caller's transaction), statement by statement."""
    answer: Any = None
    while True:
        try:
            request = plan.send(answer)
        except StopIteration as done:
            return done.value  # type: ignore[no-any-return]
        if isinstance(request, Query):
            result = await conn.execute(request.statement, request.params)
            answer = list(result) if result.returns_rows else []
        else:
            answer = await request(arg)


async def run_one_hop(engine: AsyncEngine, plan: Plan[T]) -> T:
    """Run `plan` and commit (roll back when it raises) in one call on the SQLite
    connection's thread. Raises `NotOneHop` (before running anything) when the engine's
    connection is not the one-hop aiosqlite one (`one_hop_capable` says beforehand)."""
    if engine.sync_engine._has_events:
        # Someone listens to statements (tests, tracing): give them a Connection.
        async with engine.connect() as conn:
            fairy = await conn.get_raw_connection()
            driver = fairy.driver_connection
            if not isinstance(driver, _OneHopConnection):
                raise NotOneHop(type(driver).__name__)
            sync_conn = conn.sync_connection
            assert sync_conn is not None
            return await driver._execute(_in_thread, driver._conn, sync_conn, plan)
    # Straight from the pool: no Connection, result or transaction objects around it.
    fairy = await engine.raw_connection()
    try:
        driver = fairy.driver_connection
        if not isinstance(driver, _OneHopConnection):
            raise NotOneHop(type(driver).__name__)
        return await driver._execute(_in_thread, driver._conn, engine.sync_engine, plan)
    finally:
        await greenlet_spawn(fairy.close)


async def run(engine: AsyncEngine, plan: Plan[T], *, one_hop: bool = True) -> T:
    """Run `plan` in a transaction of its own and commit it (roll back when it raises):
    in one hop on SQLite when the engine allows and `one_hop` (the plan yields Query
    requests only), else statement by statement, its async callables awaited with the
    transaction's `AsyncConnection` (for a lookup through the ORM on it)."""
    if one_hop and one_hop_capable(engine):
        try:
            return await run_one_hop(engine, plan)
        except NotOneHop:
            pass  # raised before the plan started: it runs below instead
    async with engine.begin() as conn:
        return await run_async(conn, plan, conn)


def one_hop_capable(engine: AsyncEngine) -> bool:
    """Whether `run_one_hop` may run plans on this engine: SQLite through aiosqlite, with
    the one-hop connection `inbox.db.make_engine` sets up when aiosqlite allows it (an
    engine made otherwise makes `run_one_hop` raise `NotOneHop`)."""
    return (engine.dialect.name == "sqlite" and engine.dialect.driver == "aiosqlite"
            and ONE_HOP_FITS)


class NotOneHop(RuntimeError):
    """The engine's connections cannot run a plan in one hop."""


def _in_thread(raw: sqlite3.Connection, sync_conn: Connection | Engine, plan: Plan[T]) -> T:
    dialect = sync_conn.dialect
    events = isinstance(sync_conn, Connection) and (sync_conn._has_events
                                                    or sync_conn.engine._has_events)
    answer: Any = None
    if raw.isolation_level is None and not raw.in_transaction:
        raw.execute("BEGIN")  # autocommit mode: the plan's statements commit together
    try:
        while True:
            try:
                request = plan.send(answer)
            except StopIteration as done:
                result: T = done.value
                break
            if not isinstance(request, Query):
                raise TypeError(f"a one-hop plan yields Query only, not {request!r}")
            answer = _execute(raw, sync_conn if events else None, dialect, request)  # type: ignore[arg-type]
        if raw.in_transaction:
            raw.commit()
            if events:
                sync_conn.dispatch.commit(sync_conn)  # type: ignore[arg-type]
        return result
    except BaseException:
        if raw.in_transaction:
            raw.rollback()
        raise


@dataclass(frozen=True, slots=True)
class _Prepared:
    sql: str
    names: tuple[str, ...]  # parameters in positional order
    binds: tuple[Callable[[Any], Any] | None, ...]
    defaults: Mapping[str, Any]  # values bound in the statement itself
    results: tuple[Callable[[Any], Any] | None, ...]
    row: Any  # a namedtuple class, or None for a statement without rows


# statement object -> its compiled form, per dialect name (statements are built once).
_PREPARED: dict[tuple[Any, str], _Prepared] = {}


def _prepare(statement: Any, dialect: Dialect) -> _Prepared:
    key = (statement, dialect.name)
    found = _PREPARED.get(key)
    if found is not None:
        return found
    compiled = statement.compile(dialect=dialect)
    names = tuple(compiled.positiontup or ())
    binds = tuple(compiled.binds[n].type.dialect_impl(dialect).bind_processor(dialect)
                  for n in names)
    defaults = {n: compiled.binds[n].value for n in names if not compiled.binds[n].required}
    columns = list(getattr(statement, "selected_columns", None)
                   or getattr(statement, "exported_columns", None) or ())
    results = tuple(c.type.dialect_impl(dialect).result_processor(dialect, None) for c in columns)
    row = namedtuple("Row", [c.key for c in columns], rename=True) if columns else None  # type: ignore[misc]
    prepared = _Prepared(compiled.string, names, binds, defaults, results, row)
    _PREPARED[key] = prepared
    return prepared


def _execute(raw: sqlite3.Connection, sync_conn: Connection | None, dialect: Dialect,
             query: Query) -> list[Any]:
    prepared = _prepare(query.statement, dialect)
    params = query.params or {}
    args = []
    try:
        for name, bind in zip(prepared.names, prepared.binds, strict=True):
            value = params[name] if name in params else prepared.defaults[name]
            args.append(bind(value) if bind is not None else value)
    except Exception as exc:  # as SQLAlchemy reports a parameter it cannot bind
        raise sa_exc.StatementError(f"({type(exc).__module__}.{type(exc).__name__}) {exc}",
                                    prepared.sql, params, exc) from exc
    if sync_conn is not None:
        sync_conn.dispatch.before_cursor_execute(sync_conn, None, prepared.sql, args, None, False)
    try:
        cursor = raw.execute(prepared.sql, args)
        fetched = cursor.fetchall()
        cursor.close()
    except sqlite3.Error as exc:
        raise sa_exc.DBAPIError.instance(prepared.sql, args, exc, sqlite3.Error) from exc
    if prepared.row is None:
        return []
    make, results = prepared.row._make, prepared.results
    return [make([p(v) if p is not None else v for p, v in zip(results, r, strict=True)])
            for r in fetched]

