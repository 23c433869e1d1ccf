"""WAL checkpoints from the checkpointer's own connection: commits below the fallback leave
the WAL to it, it copies everything into the database file, the WAL starts over, and
nothing committed meanwhile is lost."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from inbox.checkpoint import FALLBACK_PAGES, Checkpointer, database_path
from inbox.db import make_engine

# SQLite's own automatic checkpoint threshold (pages), the one the fallback replaces.
SQLITE_DEFAULT_AUTOCHECKPOINT = 1000


def _url(tmp_path: Path) -> str:
    return f"sqlite+aiosqlite:///{tmp_path / 'wal.db'}"


async def _commit_pages(engine: AsyncEngine, transactions: int) -> None:
    """`transactions` commits of about five WAL pages each (two rows of two pages)."""
    async with engine.begin() as conn:
        await conn.exec_driver_sql("CREATE TABLE IF NOT EXISTS probe (id INTEGER PRIMARY KEY, blob BLOB)")
    for _ in range(transactions):
        async with engine.begin() as conn:
            await conn.exec_driver_sql(
                "INSERT INTO probe (blob) VALUES (randomblob(6000)), (randomblob(6000))")


async def _autocheckpoint(engine: AsyncEngine) -> int:
    async with engine.connect() as conn:
        return int((await conn.exec_driver_sql("PRAGMA wal_autocheckpoint")).scalar_one())


@pytest.fixture
async def checkpointer(tmp_path: Path) -> Checkpointer:
    cp = await Checkpointer(str(tmp_path / "wal.db")).open()
    yield cp
    await cp.stop()


async def test_commits_below_the_fallback_leave_the_wal_to_the_checkpointer(
        tmp_path: Path, checkpointer: Checkpointer) -> None:
    engine = make_engine(_url(tmp_path), wal_autocheckpoint=FALLBACK_PAGES)
    try:
        assert await _autocheckpoint(engine) == FALLBACK_PAGES
        await _commit_pages(engine, 300)
        result = await checkpointer.checkpoint()
    finally:
        await engine.dispose()
    assert result.wal_pages > SQLITE_DEFAULT_AUTOCHECKPOINT
    assert result.complete


async def test_without_the_setting_commits_checkpoint_at_sqlites_default(
        tmp_path: Path, checkpointer: Checkpointer) -> None:
    engine = make_engine(_url(tmp_path))
    try:
        assert await _autocheckpoint(engine) == SQLITE_DEFAULT_AUTOCHECKPOINT
        await _commit_pages(engine, 300)
        result = await checkpointer.checkpoint()
    finally:
        await engine.dispose()
    # A commit past 1,000 pages checkpointed and the WAL started over since.
    assert 0 < result.wal_pages < SQLITE_DEFAULT_AUTOCHECKPOINT


async def test_after_a_complete_checkpoint_the_next_commit_starts_the_wal_over(
        tmp_path: Path, checkpointer: Checkpointer) -> None:
    engine = make_engine(_url(tmp_path), wal_autocheckpoint=FALLBACK_PAGES)
    try:
        await _commit_pages(engine, 50)
        first = await checkpointer.checkpoint()
        assert first.complete and first.copied == first.wal_pages > 100
        await _commit_pages(engine, 1)
        second = await checkpointer.checkpoint()
    finally:
        await engine.dispose()
    assert second.complete
    assert 0 < second.wal_pages < 20  # one transaction's pages, not 50 more on top


async def test_every_commit_survives_checkpoints_running_alongside(tmp_path: Path) -> None:
    path = str(tmp_path / "wal.db")
    engine = make_engine(_url(tmp_path), wal_autocheckpoint=FALLBACK_PAGES)
    checkpointer = await Checkpointer(path, interval=0.005).open()
    checkpointer.start()
    try:
        await asyncio.gather(*[_commit_pages(engine, 60) for _ in range(4)])
    finally:
        await checkpointer.stop()
        await engine.dispose()
    with sqlite3.connect(path) as conn:
        assert conn.execute("SELECT count(*) FROM probe").fetchone() == (4 * 60 * 2,)
        assert conn.execute("PRAGMA integrity_check").fetchone() == ("ok",)


async def test_a_stopped_checkpointer_is_closed(tmp_path: Path) -> None:
    checkpointer = await Checkpointer(str(tmp_path / "wal.db")).open()
    checkpointer.start()
    await checkpointer.stop()
    with pytest.raises(RuntimeError, match="before open"):
        await checkpointer.checkpoint()


@pytest.mark.parametrize(("url", "path"), [
    ("sqlite+aiosqlite:////srv/inbox/inbox.db", "/srv/inbox/inbox.db"),
    ("sqlite+aiosqlite:///inbox.db", "inbox.db"),
    ("sqlite+aiosqlite://", None),
    ("sqlite+aiosqlite:///:memory:", None),
    ("postgresql+asyncpg://postgres@127.0.0.1:5432/inbox", None),
])
def test_database_path_is_the_file_of_a_sqlite_url_only(url: str, path: str | None) -> None:
    assert database_path(url) == path
