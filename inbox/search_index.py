"""SQLite: the newest messages join the search index in batches (migration 0006).

    await catch_up(engine)            index every message written since the last batch
    SearchIndexer(engine).start()     ... every `INTERVAL_SECONDS`, in the background
    unindexed(Message.id, "message")  the rows the index may not hold yet (a condition)

Each FTS5 transaction flushes an index segment and merges older ones at commit, so
indexing each message in the transaction that stores it (migration 0005's trigger) cost
the one SQLite connection ~100-150 us per message, about two thirds of ingest's SQL;
500 at a time cost ~11 us each. `search_index_state.indexed_upto` is the id up to which
`message` rows are in `message_fts`; a batch indexes the rows after it and moves it, in
one transaction. The search (`inbox.search`) reads the rows above the mark directly, so
it finds the same rows whether or not their batch has run.

PostgreSQL has no such state (its pg_trgm index batches its own updates): there
`catch_up` does nothing and the indexer is not started.
"""

from __future__ import annotations

import contextlib
import functools
import weakref
from typing import Any

from sqlalchemy import Integer, bindparam, column, select, text
from sqlalchemy import table as table_clause
from sqlalchemy.exc import OperationalError
from sqlalchemy.ext.asyncio import AsyncEngine

from inbox import sqlrun
from inbox.periodic import Periodic
from inbox.sqlrun import Plan, Query


STATE = "search_index_state"
# (table, column) indexed in batches; web/migrations/versions/0006_* names the same.
DEFERRED = (("message", "text"),)
# Rows per transaction: a batch holds the one connection for ~5-20 ms at most.
BATCH = 2000
# How often the server's indexer looks for new rows. Each round with nothing new costs
# one small read; one with rows costs ~11 us a row.
INTERVAL_SECONDS = 0.5


@functools.cache
def _statements(table: str, col: str) -> tuple[Any, Any, Any, Any]:
    mark = (text(f"SELECT indexed_upto FROM {STATE} WHERE tbl = :tbl")
            .bindparams(bindparam("tbl", table)).columns(column("indexed_upto", Integer)))
    # The id of the last row of the next batch (None when nothing waits).
    upto = (text(f'SELECT max(id) AS upto FROM (SELECT id FROM "{table}" WHERE id > :after '
                 "ORDER BY id LIMIT :batch)")
            .bindparams(bindparam("after", type_=Integer), bindparam("batch", type_=Integer))
            .columns(column("upto", Integer)))
    index = (text(f'INSERT INTO "{table}_fts"(rowid, "{col}") SELECT id, "{col}" FROM "{table}" '
                  f"WHERE id > :after AND id <= :upto AND coalesce(\"{col}\", '') <> ''")
             .bindparams(bindparam("after", type_=Integer), bindparam("upto", type_=Integer)))
    move = (text(f"UPDATE {STATE} SET indexed_upto = :upto WHERE tbl = :tbl")
            .bindparams(bindparam("tbl", table), bindparam("upto", type_=Integer)))
    return mark, upto, index, move


def _batch(table: str, col: str, batch: int) -> Plan[int]:
    # Index the next `batch` rows of `table` above its mark and move the mark past them;
    # returns how many rows that covered (0: nothing was waiting).
    mark, upto, index, move = _statements(table, col)
    rows = yield Query(mark)
    if not rows:
        return 0  # not a deferred table in this database
    after = rows[0].indexed_upto
    last = (yield Query(upto, {"after": after, "batch": batch}))[0].upto
    if last is None:
        return 0
    yield Query(index, {"after": after, "upto": last})
    yield Query(move, {"upto": last})
    return int(last - after)


# Engines whose SQLite has no batch-indexed table (built without FTS5 trigram: migration
# 0006 created nothing there).
_WITHOUT: weakref.WeakSet[Any] = weakref.WeakSet()


def deferred(engine: AsyncEngine) -> bool:
    """Whether this engine's database may hold rows the search index has not taken yet
    (SQLite, unless a batch found no index there)."""
    return engine.dialect.name == "sqlite" and engine.sync_engine not in _WITHOUT


async def catch_up(engine: AsyncEngine, *, batch: int = BATCH) -> int:
    """Put every row written before this call into the search index; returns how many
    rows it went over (ids, with or without text). Safe to run at any time, from any
    number of tasks: each batch is one transaction that moves the mark."""
    if not deferred(engine):
        return 0
    total = 0
    for table, col in DEFERRED:
        while True:
            try:
                done = await sqlrun.run(engine, functools.partial(_batch, table, col, batch))
            except OperationalError as exc:
                if "no such table" not in str(exc):
                    raise
                _WITHOUT.add(engine.sync_engine)  # no FTS5 trigram: 0006 made nothing
                return total
            total += done
            if done < batch:
                break
    return total


def unindexed(id_column: Any, name: str) -> Any:
    """A condition on `id_column` (table `name`'s id): the row is above its mark, so the
    index may not hold it yet. Only for a deferred table (the others are indexed by
    their triggers)."""
    if name not in {t for t, _ in DEFERRED}:
        raise ValueError(f"{name!r} is indexed by its triggers, not in batches")
    state = table_clause(STATE, column("tbl"), column("indexed_upto"))
    return id_column > select(state.c.indexed_upto).where(state.c.tbl == name).scalar_subquery()


class SearchIndexer:
    """Runs `catch_up` every `interval` seconds until stopped (the server's lifespan)."""

    def __init__(self, engine: AsyncEngine, *, interval: float = INTERVAL_SECONDS) -> None:
        self.engine = engine
        self.interval = interval
        self._rounds = Periodic("search index batch", interval, lambda: catch_up(engine))

    def start(self) -> None:
        """Start indexing in the background (on the running event loop)."""
        self._rounds.start()

    async def stop(self) -> None:
        """Stop, after indexing what is waiting (so a clean shutdown leaves no backlog)."""
        await self._rounds.stop()
        with contextlib.suppress(Exception):
            await catch_up(self.engine)
