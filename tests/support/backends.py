"""Database backends for the suite: SQLite always, PostgreSQL when configured.

`INBOX_TEST_DATABASE_URL` (e.g. postgresql+asyncpg://postgres@127.0.0.1:5432/test) turns
the PostgreSQL run on; under CI (`CI=true`) a missing or unreachable server fails the
run instead of skipping it.
"""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

from sqlalchemy import text

from inbox.db import make_engine
from web.migrate import upgrade
from tests.support.required import missing

PG_ENV = "INBOX_TEST_DATABASE_URL"


def postgres_url() -> str | None:
    """The PostgreSQL URL to test against, or None (skip) outside CI."""
    url = os.environ.get(PG_ENV)
    if not url:
        missing(f"{PG_ENV} is not set (PostgreSQL variant off)")
    return url


async def _reset_postgres(url: str) -> None:
    engine = make_engine(url, pool_size=1, max_overflow=0)
    try:
        async with engine.begin() as conn:
            await conn.execute(text("DROP SCHEMA IF EXISTS public CASCADE"))
            await conn.execute(text("CREATE SCHEMA public"))
    finally:
        await engine.dispose()


async def fresh_database(kind: str, tmp_path: Path) -> str:
    """A migrated, empty database of `kind` ("sqlite" or "postgres"); returns its URL."""
    if kind == "sqlite":
        url = f"sqlite+aiosqlite:///{tmp_path / 'inbox.db'}"
    else:
        url = postgres_url() or ""
        try:
            await _reset_postgres(url)
        except OSError as exc:
            missing(f"PostgreSQL at {url} is unreachable: {exc}")
    await asyncio.to_thread(upgrade, url)
    return url
