"""SQLite: new messages join the search index in batches, not one by one at insert

Migration 0005 kept `message_fts` (FTS5, trigram) in step with `message.text` by an AFTER
INSERT trigger. Each transaction that writes an FTS5 table flushes a new index segment
and merges older ones at commit: measured on the ingest path (four statements per
follow-up message, eight messages per group commit) the trigger took ~100-150 us of the
connection's CPU per message, about two thirds of all its SQL, and most of the ~23 WAL
pages a message wrote. The same rows indexed 500 at a time cost ~11 us each.

So on SQLite `search_index_state` holds, per deferred table, the id up to which its rows
are in the index (`indexed_upto`); `inbox.search_index` indexes the rows after it in
batches, in one transaction with the new mark, from a background task of the server
(and whenever asked). Until then the search reads those few newest rows directly, so it
finds exactly what it found before (`inbox.search`).

The triggers change accordingly: an insert is indexed at once only when its id is at or
under the mark (SQLite can give a new row the id of a deleted newest row); a delete or
an edit of a row under the mark updates the index as before; one above it needs nothing
(the batch indexes the row as it then is). Contacts, identities and subjects keep
0005's triggers: they are written once per new customer, not per message.

PostgreSQL: nothing (pg_trgm's GIN index batches its own updates).

Revision ID: 0006_deferred_message_search
Revises: 0005_search_indexes
Create Date: 2026-12-07 23:00:00
"""

from __future__ import annotations

from alembic import op
from sqlalchemy.engine import Connection

revision = '0006_deferred_message_search'
down_revision = '0005_search_indexes'
branch_labels = None
depends_on = None

STATE = "search_index_state"
# (table, column) whose index is filled in batches; inbox/search_index.py names the same.
DEFERRED = (("message", "text"),)


def upgrade() -> None:
    conn = op.get_bind()
    if conn.dialect.name != "sqlite" or not _has_fts(conn):
        return
    conn.exec_driver_sql(f'CREATE TABLE "{STATE}" (tbl VARCHAR(50) NOT NULL PRIMARY KEY, '
                         "indexed_upto INTEGER NOT NULL)")
    for table, column in DEFERRED:
        # Every row there now is indexed (0005's triggers and rebuild).
        conn.exec_driver_sql(f"INSERT INTO \"{STATE}\"(tbl, indexed_upto) "
                             f"SELECT '{table}', coalesce(max(id), 0) FROM \"{table}\"")
        _drop_triggers(conn, table)
        for statement in deferred_triggers(table, column):
            conn.exec_driver_sql(statement)


def downgrade() -> None:
    conn = op.get_bind()
    if conn.dialect.name != "sqlite" or not _has_fts(conn):
        return
    for table, column in DEFERRED:
        fts = f"{table}_fts"
        # Index what is still waiting, then back to 0005's triggers.
        conn.exec_driver_sql(
            f'INSERT INTO "{fts}"(rowid, "{column}") SELECT id, "{column}" FROM "{table}" '
            f"WHERE id > (SELECT indexed_upto FROM \"{STATE}\" WHERE tbl = '{table}') "
            f"AND coalesce(\"{column}\", '') <> ''")
        _drop_triggers(conn, table)
        for statement in _immediate_triggers(table, column):
            conn.exec_driver_sql(statement)
    conn.exec_driver_sql(f'DROP TABLE "{STATE}"')


def _has_fts(conn: Connection) -> bool:
    found = conn.exec_driver_sql(
        "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = 'message_fts'")
    return bool(found.scalar())


def _drop_triggers(conn: Connection, table: str) -> None:
    for trigger in ("insert", "delete", "update"):
        conn.exec_driver_sql(f'DROP TRIGGER IF EXISTS "{table}_fts_{trigger}"')


def _statements(table: str, column: str) -> tuple[str, str]:
    fts = f"{table}_fts"
    add = (f'INSERT INTO "{fts}"(rowid, "{column}") SELECT new.id, new."{column}" '
           f"WHERE coalesce(new.\"{column}\", '') <> '';")
    remove = (f'INSERT INTO "{fts}"("{fts}", rowid, "{column}") '
              f"SELECT 'delete', old.id, old.\"{column}\" WHERE coalesce(old.\"{column}\", '') <> '';")
    return add, remove


def deferred_triggers(table: str, column: str) -> list[str]:
    """The triggers that keep `table`'s index in step for rows at or under its mark (a
    later batch indexes the rows above it). A migration that rebuilds `table` in SQLite
    batch mode must create them again."""
    fts = f"{table}_fts"
    add, remove = _statements(table, column)
    mark = f"(SELECT indexed_upto FROM \"{STATE}\" WHERE tbl = '{table}')"
    return [
        (f'CREATE TRIGGER "{fts}_insert" AFTER INSERT ON "{table}" WHEN new.id <= {mark} '
         f"BEGIN {add} END"),
        (f'CREATE TRIGGER "{fts}_delete" AFTER DELETE ON "{table}" WHEN old.id <= {mark} '
         f"BEGIN {remove} END"),
        (f'CREATE TRIGGER "{fts}_update" AFTER UPDATE OF "{column}" ON "{table}" '
         f'WHEN old."{column}" IS NOT new."{column}" AND old.id <= {mark} BEGIN {remove} {add} END'),
    ]


def _immediate_triggers(table: str, column: str) -> list[str]:
    # Migration 0005's (its `_sqlite_triggers`), written out: a migration stays as it was.
    fts = f"{table}_fts"
    add, remove = _statements(table, column)
    return [
        f'CREATE TRIGGER "{fts}_insert" AFTER INSERT ON "{table}" BEGIN {add} END',
        f'CREATE TRIGGER "{fts}_delete" AFTER DELETE ON "{table}" BEGIN {remove} END',
        (f'CREATE TRIGGER "{fts}_update" AFTER UPDATE OF "{column}" ON "{table}" '
         f'WHEN old."{column}" IS NOT new."{column}" BEGIN {remove} {add} END'),
    ]
