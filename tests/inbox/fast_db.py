"""A faster `database_url` for this suite's many small tests (same backends, same schema).

The suite-wide fixture drops and re-migrates the database for every test (~0.5 s each,
twice per test with PostgreSQL on). Here SQLite copies a database migrated once per
session, and PostgreSQL empties the tables of a schema already at head (a full reset
when it is not, e.g. after another module changed it). Import the fixture into a test
module (`from tests.inbox.fast_db import database_url, sqlite_template`) or a conftest
to use it; `admin_token`/`agent_token` here are passwordless (argon2 is slow on purpose).
"""

from __future__ import annotations

import asyncio
import shutil
from pathlib import Path

import pytest
from alembic.script import ScriptDirectory
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from inbox.agents import create_agent
from inbox.db import make_engine
from tests.support.backends import fresh_database, postgres_url
from tests.support.server import LiveServer
from web.migrate import alembic_config, upgrade

_HEAD = ScriptDirectory.from_config(alembic_config("sqlite://")).get_current_head()


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A SQLite database migrated to head once per session (checkpointed: one file)."""
    path = tmp_path_factory.mktemp("template") / "inbox.db"
    upgrade(f"sqlite+aiosqlite:///{path}")
    return path


async def _empty_postgres(url: str) -> bool:
    """Empty every table of a schema at head; False when the schema is not at head."""
    engine = make_engine(url, pool_size=1, max_overflow=0)
    try:
        async with engine.begin() as conn:
            exists = (await conn.execute(text("SELECT to_regclass('public.alembic_version')"))).scalar()
            if exists is None:
                return False
            version = (await conn.execute(text("SELECT version_num FROM alembic_version"))).scalar()
            if version != _HEAD:
                return False
            tables = (await conn.execute(text(
                "SELECT tablename FROM pg_tables WHERE schemaname = 'public' "
                "AND tablename <> 'alembic_version'"))).scalars().all()
            if not tables:
                return True
            try:
                # DELETE of a few rows is ~3x faster than TRUNCATE (which rewrites files);
                # the replica role skips foreign-key triggers, so order does not matter.
                async with conn.begin_nested():
                    await conn.execute(text("SET LOCAL session_replication_role = replica"))
                    for table in tables:
                        await conn.execute(text(f'DELETE FROM "{table}"'))
                    sequences = (await conn.execute(text(
                        "SELECT sequencename FROM pg_sequences WHERE schemaname = 'public'"))).scalars().all()
                    for sequence in sequences:
                        await conn.execute(text(f'ALTER SEQUENCE "{sequence}" RESTART'))
            except DBAPIError:  # not a superuser: the slower, always-allowed way
                names = ", ".join(f'"{t}"' for t in tables)
                await conn.execute(text(f"TRUNCATE {names} RESTART IDENTITY CASCADE"))
            return True
    finally:
        await engine.dispose()


@pytest.fixture
async def database_url(backend: str, tmp_path: Path, sqlite_template: Path) -> str:
    """A migrated, empty database of the current backend (fast variant)."""
    if backend == "sqlite":
        path = tmp_path / "inbox.db"
        await asyncio.to_thread(shutil.copyfile, sqlite_template, path)
        return f"sqlite+aiosqlite:///{path}"
    url = postgres_url() or ""
    try:
        if await _empty_postgres(url):
            return url
    except OSError:
        pass  # fresh_database reports an unreachable server (skip, or fail on CI)
    return await fresh_database(backend, tmp_path)


# Argon2 is slow on purpose; API tests that never log in with a password skip it.


@pytest.fixture
async def admin_token(server: LiveServer) -> str:
    """An API token of a passwordless admin on the live server."""
    _agent, token = await create_agent(server.rt, email="admin@test.example", name="Admin", role="admin")
    return token


@pytest.fixture
async def agent_token(server: LiveServer) -> str:
    """An API token of a passwordless agent on the live server."""
    _agent, token = await create_agent(server.rt, email="agent@test.example", name="Agent", role="agent")
    return token
