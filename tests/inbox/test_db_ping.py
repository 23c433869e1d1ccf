"""The PostgreSQL pool checks only connections that sat idle (issue 7), and still
recovers from connections the server dropped, without a restart."""

from __future__ import annotations

import asyncio

import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine

from inbox import db
from tests.support.backends import postgres_url

pytestmark = pytest.mark.postgres


async def _backend_pid(engine: AsyncEngine) -> int:
    async with engine.connect() as conn:
        return int((await conn.execute(text("SELECT pg_backend_pid()"))).scalar_one())


async def _terminate(url: str, pid: int) -> None:
    killer = db.make_engine(url, pool_size=1, max_overflow=0)
    try:
        async with killer.connect() as conn:
            await conn.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})
    finally:
        await killer.dispose()


async def _statements(engine: AsyncEngine, sql: str) -> int:
    async with engine.connect() as conn:
        return int((await conn.execute(text(sql))).scalar_one())


async def test_busy_connection_is_used_without_a_ping() -> None:
    url = postgres_url() or ""
    engine = db.make_engine(url, pool_size=1, max_overflow=0)
    pings: list[object] = []
    engine.sync_engine.dialect.do_ping = lambda conn: pings.append(conn) or True  # type: ignore[method-assign]
    try:
        first = await _backend_pid(engine)
        assert await _backend_pid(engine) == first
        assert pings == []
    finally:
        await engine.dispose()


async def test_connection_dropped_while_idle_is_replaced_before_use(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(db, "PING_IDLE_SECONDS", 0.05)
    url = postgres_url() or ""
    engine = db.make_engine(url, pool_size=1, max_overflow=0)
    try:
        dropped = await _backend_pid(engine)
        await _terminate(url, dropped)
        await asyncio.sleep(0.2)  # idle longer than PING_IDLE_SECONDS
        assert await _backend_pid(engine) != dropped  # no error: pinged, reconnected
    finally:
        await engine.dispose()


async def test_connection_dropped_while_busy_fails_once_then_the_pool_reconnects() -> None:
    url = postgres_url() or ""
    engine = db.make_engine(url, pool_size=2, max_overflow=0)
    try:
        dropped = await _backend_pid(engine)
        await _terminate(url, dropped)
        await asyncio.sleep(0.1)  # the server has closed it; still "recently used"
        with pytest.raises(DBAPIError) as failed:
            await _statements(engine, "SELECT 1")
        assert failed.value.connection_invalidated  # web/errors.py: a 503
        assert await _backend_pid(engine) != dropped
        assert await _statements(engine, "SELECT 1") == 1
    finally:
        await engine.dispose()
