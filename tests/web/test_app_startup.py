"""What the app's startup sets up besides the routes: WAL checkpoints off the commit path
on a SQLite file, and (for `inbox serve`) a frozen startup heap."""

from __future__ import annotations

import asyncio
import gc
import os
from collections.abc import Iterator

import pytest

from inbox.checkpoint import FALLBACK_PAGES, database_path
from tests.conftest import make_settings
from tests.support.server import live_server
from web.app import build_runtime, create_app


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



async def test_a_runtime_nobody_checkpoints_keeps_sqlites_own_threshold(sqlite_url: str) -> None:
    # Without the app's lifespan no Checkpointer runs, so commits checkpoint as SQLite does.
    rt = await build_runtime(make_settings(sqlite_url), migrate_db=False, responders=lambda s: [])
    try:
        async with rt.engine.begin() as conn:
            autocheckpoint = (await conn.exec_driver_sql("PRAGMA wal_autocheckpoint")).scalar_one()
    finally:
        await rt.close()
    assert autocheckpoint == 1000

@pytest.fixture
def unfrozen() -> Iterator[None]:
    """Starts and ends with nothing frozen (a frozen test process would never free it)."""
    gc.unfreeze()
    yield
    gc.unfreeze()


@pytest.mark.usefixtures("unfrozen")
@pytest.mark.parametrize("freeze_heap", [True, False])
async def test_only_an_app_asked_to_freezes_its_startup_heap(sqlite_url: str,
                                                             freeze_heap: bool) -> None:
    app = create_app(make_settings(sqlite_url), migrate_db=False, responders=lambda s: [],
                     dispatch=False, freeze_heap=freeze_heap)
    async with app.router.lifespan_context(app):
        frozen = gc.get_freeze_count()
    assert (frozen > 0) is freeze_heap
