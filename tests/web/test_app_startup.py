"""What the app's startup sets up besides the routes: WAL checkpoints off the commit path
on a SQLite file."""

from __future__ import annotations

import asyncio
import os

from inbox.checkpoint import FALLBACK_PAGES, database_path
from tests.conftest import make_settings
from tests.support.server import live_server


async def test_app_on_a_sqlite_file_checkpoints_while_commits_do_not(sqlite_url: str) -> None:
    path = database_path(sqlite_url)
    assert path is not None
    async with live_server(make_settings(sqlite_url)) as srv:
        async with srv.rt.engine.begin() as conn:
            autocheckpoint = (await conn.exec_driver_sql("PRAGMA wal_autocheckpoint")).scalar_one()
            await conn.exec_driver_sql("CREATE TABLE probe (blob BLOB)")
        size = os.path.getsize(path)
        for _ in range(10):  # ~50 WAL pages, far below what makes a commit checkpoint
            async with srv.rt.engine.begin() as conn:
                await conn.exec_driver_sql("INSERT INTO probe VALUES (randomblob(6000)), (randomblob(6000))")
        # In WAL mode only a checkpoint writes the database file itself.
        async with asyncio.timeout(10):
            while os.path.getsize(path) <= size:
                await asyncio.sleep(0.05)
    assert autocheckpoint == FALLBACK_PAGES
