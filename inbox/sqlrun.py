"""Run a transaction written as a plan: a generator that yields the statements it needs
and receives their rows (a pure core with thin I/O shells, as python-websockets does).

    def plan() -> Plan[int]:
        rows = yield Query(statement, {"id": 7})
        ...
        return result

Two shells run a plan, with one behaviour:

    run_async(conn, plan, ...)   any backend: the plan on an AsyncConnection, in one
                                 greenlet; a plan may also yield an async callable
                                 (a lookup through the ORM), awaited with `arg`
    run_one_hop(engine, plan)    SQLite (aiosqlite): the whole plan, its commit included,
                                 in one call on the connection's own thread, together
                                 with the plans that queued meanwhile (group commit)
    run(engine, plan)            a transaction of its own: one hop when the engine can
                                 (and the plan allows), else checkout, BEGIN, the
                                 statements and COMMIT in one greenlet (PostgreSQL);
                                 every step runs its plans through this

Why the second: on SQLite each statement through SQLAlchemy's async adapter cost ~200 us
of event-loop CPU (a greenlet, a thread hop, cursor and result wrapping) against ~10 us
for SQLite to run it; a follow-up message's four statements and commit were most of
ingest's CPU. And plans that wait for the one connection (`inbox.db`: SQLite has one
writer) run as one group when it is free: one pool checkout, one thread hop and one
commit for all of them, a plan that raises leaving no trace (`inbox.sqlthread`). Under
load that is most of the connection's work; a lone plan runs and commits by itself as
before. Whoever awaits a plan hears of it only after the commit that holds it.

Why one greenlet elsewhere (PostgreSQL): each `await` on an AsyncConnection or
AsyncEngine (connect, begin, every execute, commit, close) spawns a greenlet of its own
and wraps the call; a customer's first message with the FAQ bot's hand-over awaited about
25 of them. Run as one synchronous function under one `greenlet_spawn`, the plan's
statements still wait for asyncpg on the event loop (SQLAlchemy's `await_only`), with the
same statements, round trips, transaction and errors.

A plan may yield `DEFER_FLUSH` (the event writers do, holding the event lock): on
PostgreSQL, under `run`, its transaction then commits without waiting for the WAL flush,
and `run` returns only after a durability barrier (see `_ASYNC_COMMIT` below); on
SQLite, or inside a transaction someone else commits (`run_async`), it does nothing.
"""

from __future__ import annotations

import asyncio
import weakref
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

from sqlalchemy import exc as sa_exc
from sqlalchemy import util as sa_util
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine
from sqlalchemy.util import await_only, greenlet_spawn

from inbox.db import _ONE_HOP_FITS as ONE_HOP_FITS
from inbox.db import _OneHopConnection
from inbox.sqlthread import (
    DEFER_FLUSH,
    Plan,
    PlanSource,
    Query,
    bind_args,
    drive,
    make_rows,
    prepare,
    run_group,
    run_plan,
    start,
)

__all__ = ["DEFER_FLUSH", "NotOneHop", "Plan", "PlanSource", "Query", "one_hop_capable", "run", "run_async",
           "run_one_hop"]

T = TypeVar("T")

# Plans in one group at most: a group's callers all wait for its commit (about 0.3 ms of
# SQLite work per message, so ~20 ms for a full group).
MAX_GROUP = 64


async def run_async(conn: AsyncConnection, plan: Plan[T], arg: Any = None) -> T:
    """Run `plan` on `conn` (in the caller's transaction, which it neither commits nor
    rolls back): its statements in order, its async callables awaited with `arg`; returns
    the plan's result, or raises what a statement or the plan raised."""
    return await conn.run_sync(_drive, plan, lambda: arg)


def _drive(sync_conn: Connection, plan: Plan[T], arg: Callable[[], Any],
           deferred: list[bool] | None = None) -> T:
    # Runs inside a greenlet_spawn: a statement's wait for the driver, and an async
    # callable's, go back to the event loop through await_only. `deferred`: where to
    # note that the plan asked for DEFER_FLUSH and got it (None: in a transaction that
    # someone else commits, so it is not granted).
    direct = _direct_capable(sync_conn)

    def answer(request: Any) -> Any:
        if request is DEFER_FLUSH:
            if deferred is not None and not deferred[0] and _can_defer_flush(sync_conn):
                sync_conn.exec_driver_sql(_ASYNC_COMMIT)
                deferred[0] = True
            return []
        if not isinstance(request, Query):
            return await_only(request(arg()))
        rows = _execute_direct(sync_conn, request) if direct else None
        if rows is None:
            result = sync_conn.execute(request.statement, request.params)
            rows = list(result) if result.returns_rows else []
        return rows

    return drive(plan, answer)


def _direct_capable(sync_conn: Connection) -> bool:
    # asyncpg with nobody listening to statements (tests and tracing see every statement
    # through SQLAlchemy's execute, as before).
    return (sync_conn.dialect.driver == "asyncpg"
            and not (sync_conn._has_events or sync_conn.engine._has_events))


def _execute_direct(sync_conn: Connection, query: Query) -> list[Any] | None:
    """`query`'s rows, run on the DBAPI cursor with its SQL compiled once
    (`sqlthread.prepare`, as the SQLite shell does), or None (nothing run) for a
    statement this does not cover: one with parameters rendered per execution, a
    textual one with no declared columns, an executemany.

    Why: SQLAlchemy's execute wraps each statement (execution context, cursor result)
    for about 35 us of CPU on top of asyncpg's own; a first message and the bot's
    hand-over run a dozen. Errors go through SQLAlchemy's own handling, so they are
    wrapped alike (IntegrityError, DBAPIError) and a dropped connection invalidates
    the pool as it would (`Connection._handle_dbapi_exception`).
    """
    params = query.params
    if params is not None and not isinstance(params, Mapping):
        return None
    prepared = prepare(query.statement, sync_conn.dialect)
    if not prepared.plain or (prepared.row is None
                              and not getattr(query.statement, "is_dml", False)):
        return None
    args = bind_args(prepared, params)
    dbapi_conn: Any = sync_conn.connection.dbapi_connection
    cursor = dbapi_conn.cursor()
    try:
        cursor.execute(prepared.sql, args)
        fetched = cursor.fetchall() if prepared.row is not None else ()
    except BaseException as exc:
        if (isinstance(exc, sync_conn.dialect.loaded_dbapi.Error)
                or sa_util.is_exit_exception(exc)):
            sync_conn._handle_dbapi_exception(exc, prepared.sql, args, cursor, None)
        raise
    finally:
        cursor.close()
    return make_rows(prepared, fetched)


def _transaction(engine: AsyncEngine, source: PlanSource[T]) -> T:
    # Checkout, BEGIN, the plan, COMMIT (ROLLBACK when anything raises) and checkin, all
    # in the one greenlet `run` spawned. An async callable gets an AsyncConnection on the
    # same connection and transaction, made only when one asks. A plan granted
    # DEFER_FLUSH is answered only after the flush barrier.
    deferred = [False]
    plan = start(source)
    with engine.sync_engine.connect() as sync_conn:
        with sync_conn.begin():
            result = _drive(sync_conn, plan, lambda: AsyncConnection(engine, sync_conn), deferred)
        if deferred[0]:
            _wait_until_durable(sync_conn)
        return result


# DEFER_FLUSH on PostgreSQL. Every event-writing transaction holds the event lock
# (`store.add_events`) until its commit, and a synchronous commit holds it through the
# WAL fsync (~5 ms here, 100 ms at times): the lock then admitted about one writer per
# fsync, ~200 messages/s across all workers, and one slow fsync queued every writer
# behind it (p99 ~250 ms at 100 msg/s). With synchronous_commit off for that one
# transaction, its COMMIT returns (and releases the lock) once the commit record is in
# the WAL buffers, its rows visible in commit order as before; then a transaction that
# writes a WAL record of its own (a transactional logical message: no table, no lock,
# no privilege beyond EXECUTE) commits with the session's own synchronous_commit, which
# waits until the WAL is flushed (or replicated, as configured) past that record, and so
# past the first commit. The caller answers after that, as before. Concurrent
# barriers share PostgreSQL's group flush instead of queueing for the lock.
_ASYNC_COMMIT = "SET LOCAL synchronous_commit TO off"
_BARRIER = "SELECT pg_logical_emit_message(true, 'omnichannel-inbox', '')"
_BARRIER_ALLOWED = ("SELECT has_function_privilege("
                    "'pg_logical_emit_message(boolean, text, text)', 'EXECUTE')")
# Per engine: whether the barrier is allowed there (looked up once; when it is not,
# DEFER_FLUSH is not granted and commits wait for their flush as before).
_BARRIER_OK: weakref.WeakKeyDictionary[Engine, bool] = weakref.WeakKeyDictionary()


def _can_defer_flush(sync_conn: Connection) -> bool:
    if sync_conn.dialect.name != "postgresql":
        return False
    engine = sync_conn.engine
    allowed = _BARRIER_OK.get(engine)
    if allowed is None:
        try:
            with sync_conn.begin_nested():  # an error must not end the plan's transaction
                allowed = bool(sync_conn.exec_driver_sql(_BARRIER_ALLOWED).scalar())
        except sa_exc.DBAPIError:
            allowed = False  # no such function (PostgreSQL before 9.6)
        _BARRIER_OK[engine] = allowed
    return allowed


def _wait_until_durable(sync_conn: Connection) -> None:
    # The barrier in a transaction of its own (one statement in autocommit).
    sync_conn.execution_options(isolation_level="AUTOCOMMIT").exec_driver_sql(_BARRIER)


async def run_one_hop(engine: AsyncEngine, plan: PlanSource[T]) -> T:
    """Run `plan` (or the plan it makes) and commit (roll back when it raises) in one call on the SQLite
    connection's thread, in a group with the plans queued meanwhile. Raises `NotOneHop`
    (before running anything) when the engine's connection is not the one-hop aiosqlite
    one (`one_hop_capable` says beforehand)."""
    if engine.sync_engine._has_events:
        # Someone listens to statements (tests, tracing): give them a Connection, and
        # one transaction per plan, as they would see it statement by statement.
        async with engine.connect() as conn:
            fairy = await conn.get_raw_connection()
            driver = fairy.driver_connection
            if not isinstance(driver, _OneHopConnection):
                raise NotOneHop(type(driver).__name__)
            sync_conn = conn.sync_connection
            assert sync_conn is not None
            return await driver._execute(run_plan, driver._conn, sync_conn, plan)  # type: ignore[no-any-return]
    group = _GROUPS.get(engine.sync_engine)
    if group is None:
        group = _GROUPS[engine.sync_engine] = _GroupCommit()
    return await group.run(engine, plan)


async def run(engine: AsyncEngine, plan: PlanSource[T], *, one_hop: bool = True) -> T:
    """Run `plan` in a transaction of its own and commit it (roll back when it raises):
    `plan` is a plan or a function that makes it afresh (which lets a group of plans on
    SQLite run without a savepoint each: `inbox.sqlthread`); in one hop on SQLite when the engine allows and `one_hop` (the plan yields Query
    requests only), else in one greenlet (checkout to checkin), its async callables
    awaited with an `AsyncConnection` on the transaction's connection (for a lookup
    through the ORM on it). Returns only after the commit."""
    if one_hop and one_hop_capable(engine):
        try:
            return await run_one_hop(engine, plan)
        except NotOneHop:
            pass  # raised before the plan started: it runs below instead
    return await greenlet_spawn(_transaction, engine, plan)  # type: ignore[no-any-return]


def one_hop_capable(engine: AsyncEngine) -> bool:
    """Whether `run_one_hop` may run plans on this engine: SQLite through aiosqlite, with
    the one-hop connection `inbox.db.make_engine` sets up when aiosqlite allows it (an
    engine made otherwise makes `run_one_hop` raise `NotOneHop`)."""
    return (engine.dialect.name == "sqlite" and engine.dialect.driver == "aiosqlite"
            and ONE_HOP_FITS)


class NotOneHop(RuntimeError):
    """The engine's connections cannot run a plan in one hop."""


class _GroupCommit:
    """The plans waiting for one engine's connection. The first plan to find nobody
    running groups runs at once in its caller's task (no task switch on a quiet server);
    what queues meanwhile is run as groups by one task, until nothing waits."""

    def __init__(self) -> None:
        self.waiting: list[tuple[PlanSource[Any], asyncio.Future[Any]]] = []
        self.running = False
        self._task: asyncio.Task[None] | None = None  # the one draining the queue

    async def run(self, engine: AsyncEngine, plan: PlanSource[T]) -> T:
        """`plan`'s result once the group that ran it committed (its exception else)."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[T] = loop.create_future()
        self.waiting.append((plan, future))
        if not self.running:
            self.running = True
            try:
                await self._run_next(engine)  # this plan alone: nothing else waited
            finally:
                if self.waiting:
                    self._task = loop.create_task(self._drain(engine))
                else:
                    self.running = False
        return await future

    async def _drain(self, engine: AsyncEngine) -> None:
        try:
            while self.waiting:
                await self._run_next(engine)
        finally:
            self.running = False
            if self.waiting:  # cancelled (shutdown): nobody will run these
                _fail([f for _, f in self.waiting], asyncio.CancelledError())
                self.waiting.clear()

    async def _run_next(self, engine: AsyncEngine) -> None:
        group = self.waiting[:MAX_GROUP]
        del self.waiting[:MAX_GROUP]
        await self._run(engine, group)

    async def _run(self, engine: AsyncEngine,
                   group: list[tuple[PlanSource[Any], asyncio.Future[Any]]]) -> None:
        futures = [f for _, f in group]
        try:
            outcomes = await _run_group(engine, [p for p, _ in group])
        except BaseException as exc:
            _fail(futures, exc)
            if not isinstance(exc, Exception):
                raise
            return
        for future, (ok, value) in zip(futures, outcomes, strict=True):
            if not future.done():
                if ok:
                    future.set_result(value)
                else:
                    future.set_exception(value)


async def _run_group(engine: AsyncEngine, plans: list[PlanSource[Any]]) -> list[Any]:
    # One checkout, `plans` in one call on the connection's thread (`run_group`), checkin.
    fairy = await engine.raw_connection()
    try:
        driver = fairy.driver_connection
        if not isinstance(driver, _OneHopConnection):
            raise NotOneHop(type(driver).__name__)
        sync_engine: Engine = engine.sync_engine
        return await driver._execute(run_group, driver._conn, sync_engine, plans)  # type: ignore[no-any-return]
    finally:
        await greenlet_spawn(fairy.close)


def _fail(futures: list[asyncio.Future[Any]], exc: BaseException) -> None:
    for future in futures:
        if not future.done():
            if isinstance(exc, Exception):
                future.set_exception(exc)
            else:
                future.cancel()


# One queue per engine (an engine and its connection live on one event loop).
_GROUPS: weakref.WeakKeyDictionary[Engine, _GroupCommit] = weakref.WeakKeyDictionary()
