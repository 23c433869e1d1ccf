"""Engine and session factory, plus the column types every table shares."""

from __future__ import annotations

import inspect
import sqlite3
import time
from datetime import UTC, datetime
from functools import partial
from typing import Any, Self

import aiosqlite
from sqlalchemy import JSON, DateTime, event
from sqlalchemy import exc as sa_exc
from sqlalchemy.engine import Dialect
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker, create_async_engine
from sqlalchemy.orm import configure_mappers
from sqlalchemy.types import TypeDecorator
from sqlmodel.ext.asyncio.session import AsyncSession

from inbox import jsontext
from inbox.timetext import utc_text


class UTCDateTime(TypeDecorator[datetime]):
    """Aware UTC datetimes on every backend (SQLite forgets time zones)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)

    # SQLite: the text SQLAlchemy's DATETIME stores, made by one C call instead of this
    # type's and DATETIME's Python processors in turn (2.9 -> 1.7 us; a message binds
    # four). Used only where it gives the very same text as the general path (checked
    # once per dialect).
    def bind_processor(self, dialect: Dialect) -> Any:
        general = super().bind_processor(dialect)
        if dialect.name != "sqlite" or general is None or not _same(general, _sqlite_text, _PROBE):
            return general
        return _sqlite_text

    # SQLite: the aware datetime of the stored text in one C call (0.2 us) instead of
    # DATETIME's parser and this type's `replace` in turn (1.4 us); a follow-up message
    # reads seven. Used only where it gives the very same values as the general path.
    def result_processor(self, dialect: Dialect, coltype: Any) -> Any:
        general = super().result_processor(dialect, coltype)
        if dialect.name != "sqlite" or general is None:
            return general

        def fast(value: str | None) -> datetime | None:
            if value is None:
                return None
            try:
                return datetime.fromisoformat(value + "+00:00")
            except (TypeError, ValueError):  # not the text this type stores: as before
                return general(value)  # type: ignore[no-any-return]

        if not all(_same(general, fast, text) for text in _RESULT_PROBES):
            return general
        return fast


def _sqlite_text(value: datetime | None) -> str | None:
    if value is None:
        return None
    if value.tzinfo is not UTC:
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        value = value.astimezone(UTC)
    return utc_text(value)


def _same(general: Any, fast: Any, value: Any) -> bool:
    try:
        return bool(general(value) == fast(value))
    except Exception:  # noqa: BLE001 - the general path does not take it: keep that path
        return False


_PROBE = datetime(2026, 1, 2, 3, 4, 5, 60708, tzinfo=UTC)
_RESULT_PROBES = ("2026-01-02 03:04:05.060708", "2026-01-02 03:04:05.000000",
                  "1999-12-31 23:59:59")


JSONType = JSON().with_variant(JSON(), "postgresql")


def make_engine(url: str, *, wal_autocheckpoint: int | None = None, **kwargs: Any) -> AsyncEngine:
    """An async engine for `url`; SQLite gets WAL and a busy timeout so readers never block.

    `wal_autocheckpoint` (SQLite): the WAL size in pages at which a commit checkpoints
    (SQLite's default, 1,000, when None); raise it only while an
    `inbox.checkpoint.Checkpointer` checkpoints the same file off the commit path.
    """
    if url.startswith("sqlite"):
        kwargs.setdefault("connect_args", {"timeout": 30})
        # SQLite has one writer at a time; several pooled connections only take turns
        # sleeping in its busy handler (1-100 ms a retry). One connection queues them in
        # asyncio instead: measured 40 -> 94 webhooks/s and p99 3.7 s -> 0.36 s under
        # load (bench/scale_bench.py). Nothing may hold a session while opening another.
        kwargs.setdefault("pool_size", 1)
        kwargs.setdefault("max_overflow", 0)
        kwargs.setdefault("pool_timeout", 60)
    else:
        # Fail fast when PostgreSQL is away (asyncpg waits 60 s to connect by default):
        # requests get a 503 and providers retry, instead of hanging.
        kwargs.setdefault("connect_args", {"timeout": 5, "command_timeout": 30})
        kwargs.setdefault("pool_timeout", 10)
        kwargs.setdefault("pool_size", 10)
        kwargs.setdefault("max_overflow", 20)
    if url.startswith("sqlite+aiosqlite") and _ONE_HOP_FITS:
        # One thread hop per statement instead of four (see `_OneHopConnection`).
        kwargs.setdefault("async_creator", _one_hop_creator(lambda: engine, kwargs["connect_args"]))
    # JSON columns' text through orjson where it agrees with `json` (`inbox.jsontext`).
    kwargs.setdefault("json_serializer", jsontext.column)
    engine = create_async_engine(url, **kwargs)
    if url.startswith("sqlite"):

        @event.listens_for(engine.sync_engine, "connect")
        def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:  # pragma: no cover - glue
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            # In WAL mode a commit is written, not fsynced: it survives a killed process
            # (the OS has it); a power cut may lose the last commits but, as checkpoints
            # still fsync, never corrupts the file (sqlite.org/pragma.html#pragma_synchronous).
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.execute("PRAGMA foreign_keys=ON")
            if wal_autocheckpoint is not None:
                cur.execute(f"PRAGMA wal_autocheckpoint={int(wal_autocheckpoint)}")
            cur.close()

    elif not kwargs.get("pool_pre_ping"):
        _ping_when_idle(engine, PING_IDLE_SECONDS)
    return engine


# SQLAlchemy's `pool_pre_ping` checks every connection at every checkout: three round
# trips on asyncpg (BEGIN, ";", ROLLBACK), a dozen per customer's first message with the
# FAQ responder. A connection that came back to the pool moments ago is almost
# surely alive, so only one idle longer than this is checked. One that died meanwhile
# (PostgreSQL restarted under load) fails its first statement as a disconnect:
# SQLAlchemy then invalidates it and every connection pooled before it, that request
# answers 503 (web/errors.py; providers retry) and the next ones connect afresh.
PING_IDLE_SECONDS = 10.0


def _ping_when_idle(engine: AsyncEngine, idle_seconds: float) -> None:
    pool = engine.sync_engine.pool
    dialect = engine.sync_engine.dialect

    @event.listens_for(pool, "checkin")
    def _returned(_dbapi_conn: Any, record: Any) -> None:
        if record is not None:
            record.info["returned_at"] = time.monotonic()

    @event.listens_for(pool, "checkout")
    def _checked_out(dbapi_conn: Any, record: Any, _proxy: Any) -> None:
        returned = record.info.get("returned_at")  # None: a new connection
        # Checked as pre-ping would; a dead one makes the pool reconnect (this one and
        # every one pooled before it, as pre-ping does).
        if (returned is not None and time.monotonic() - returned > idle_seconds
                and not dialect._do_ping_w_event(dbapi_conn)):
            raise sa_exc.InvalidatePoolError()


def make_sessionmaker(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    """Sessions that keep loaded objects usable after commit.

    Also configures the ORM mappers defined so far: the hot paths build no ORM query
    (ingest runs Core statements), and a model made with `model_construct` before any
    query would otherwise find its attributes unconfigured.
    """
    configure_mappers()
    return async_sessionmaker(engine, class_=AsyncSession, expire_on_commit=False)


# ------------------------------------------------------------------ SQLite, one hop a statement
#
# aiosqlite runs every call on its connection's thread and hands the result back through
# the event loop: ~45 us of CPU per hop (queue, thread wake-up, self-pipe). SQLAlchemy's
# adapter makes four per SELECT (cursor, execute, fetchall, close) and three per write,
# about 48 per inbound SMS with the FAQ responder. This cursor does all four in one hop,
# on the connection's own thread as before: the event loop never runs SQLite itself.


# `_OneHopConnection` leans on aiosqlite internals (`_execute`, `_conn`, `_connection`,
# `_thread`, the constructor's arguments), as of aiosqlite 0.20-0.22. A release without
# them gets aiosqlite's own connection: slower, never broken.
_ONE_HOP_FITS = (
    all(hasattr(aiosqlite.Connection, name) for name in ("_execute", "_conn"))
    and list(inspect.signature(aiosqlite.Connection.__init__).parameters)[1:3]
    == ["connector", "iter_chunk_size"]
)


def _run_statement(
    conn: sqlite3.Connection, sql: str, parameters: Any, many: bool
) -> tuple[Any, int, int | None, list[Any]]:
    cursor = conn.cursor()
    try:
        if many:
            cursor.executemany(sql, parameters)
        elif parameters is None:
            cursor.execute(sql)
        else:
            cursor.execute(sql, parameters)
        description = cursor.description
        rows = cursor.fetchall() if description else []
        return description, cursor.rowcount, cursor.lastrowid, rows
    finally:
        cursor.close()


class _BufferedCursor:
    """An aiosqlite-shaped cursor whose `execute` runs and fetches in one thread hop.

    Results are buffered whole, as SQLAlchemy's adapter does anyway for every
    non-streaming cursor (`AsyncAdapt_dbapi_cursor._execute_async` calls fetchall).
    """

    arraysize = 1

    def __init__(self, connection: _OneHopConnection) -> None:
        self._connection = connection
        self.description: Any = None
        self.rowcount = -1
        self.lastrowid: int | None = None
        self._rows: list[Any] = []

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc: object) -> None:
        self._rows = []

    async def _run(self, sql: str, parameters: Any, many: bool) -> _BufferedCursor:
        conn = self._connection._conn
        self.description, self.rowcount, self.lastrowid, self._rows = (
            await self._connection._execute(_run_statement, conn, sql, parameters, many))
        return self

    async def execute(self, sql: str, parameters: Any = None) -> _BufferedCursor:
        return await self._run(sql, parameters, False)

    async def executemany(self, sql: str, parameters: Any) -> _BufferedCursor:
        return await self._run(sql, parameters, True)

    async def fetchall(self) -> list[Any]:
        rows, self._rows = self._rows, []
        return rows

    async def fetchone(self) -> Any:
        return self._rows.pop(0) if self._rows else None

    async def fetchmany(self, size: int | None = None) -> list[Any]:
        n = self.arraysize if size is None else size
        rows, self._rows = self._rows[:n], self._rows[n:]
        return rows

    async def setinputsizes(self, *sizes: Any) -> None:
        return None

    async def nextset(self) -> None:
        return None

    async def close(self) -> None:
        self._rows = []


class _OneHopConnection(aiosqlite.Connection):
    """aiosqlite's connection, with cursors that cost one thread hop per statement, and
    no hop at all for a commit or rollback with no transaction open.

    SQLAlchemy's pool rolls back every connection it gets back (even right after a
    commit) and a read-only session ends with a rollback; on SQLite (pysqlite begins a
    transaction only before a write) both find none open: two of the three hops left
    per ingest. sqlite3's own commit() and rollback() do nothing then either, so
    skipping the call changes nothing. Reading `in_transaction` from the event loop is
    safe: it reads a flag, and the connection's owner has no statement in flight.
    """

    def cursor(self) -> _BufferedCursor:  # type: ignore[override]
        return _BufferedCursor(self)

    def _idle(self) -> bool:
        conn = self._connection
        return conn is not None and not conn.in_transaction

    async def commit(self) -> None:
        if not self._idle():
            await super().commit()

    async def rollback(self) -> None:
        if not self._idle():
            await super().rollback()


def _one_hop_creator(engine: Any, connect_args: dict[str, Any]) -> Any:
    """SQLAlchemy's `async_creator` for aiosqlite URLs: the arguments the dialect would
    give `aiosqlite.connect` (file name, URL options, `connect_args`), on a
    `_OneHopConnection`."""

    async def create() -> _OneHopConnection:
        sync_engine = engine().sync_engine
        cargs, cparams = sync_engine.dialect.create_connect_args(sync_engine.url)
        cparams.update(connect_args)
        conn = _OneHopConnection(partial(sqlite3.connect, *cargs, **cparams), 64)
        conn._thread.daemon = True  # as SQLAlchemy does for aiosqlite's own connections
        return await conn

    return create
