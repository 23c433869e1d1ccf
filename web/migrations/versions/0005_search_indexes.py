"""search indexes: FTS5 trigram tables on SQLite, pg_trgm GIN indexes on PostgreSQL
(and a partial index of the open unanswered FAQ questions)

The agent's search box is a case-insensitive substring search (`inbox/search.py`) over
message texts, contact names, identity values and conversation subjects. A substring
`LIKE '%x%'` cannot use a B-tree, so at 1M messages it scanned them all (400-600 ms).

SQLite: one external-content FTS5 table per searched column (`message_fts` over
`message.text`, ...) with the trigram tokenizer (SQLite >= 3.34), kept in step by
AFTER INSERT / DELETE / UPDATE OF <column> triggers, so no code that writes those rows has
to know. A build without FTS5 or trigram gets no tables and a log line; the search then
scans as before (`inbox.search` looks for the tables).

PostgreSQL: `CREATE EXTENSION IF NOT EXISTS pg_trgm` and a GIN index on `lower(column)`
with `gin_trgm_ops`, which serves the search's `lower(column) LIKE '%x%'` as it is. Without
the privilege to create the extension the migration still succeeds (log line says how to
add it later); the search then scans. On a big live table, an operator may build the
indexes beforehand with CREATE INDEX CONCURRENTLY under the same names: IF NOT EXISTS
skips them here.

A later migration that rebuilds one of these tables in SQLite batch mode (copy, drop,
rename) drops its triggers with it: it must create them again (`_sqlite_triggers`).

Revision ID: 0005_search_indexes
Revises: 0004_canned_merges
Create Date: 2026-12-07 15:40:00
"""

from __future__ import annotations

import logging

import sqlalchemy as sa
from alembic import op
from sqlalchemy.engine import Connection
from sqlalchemy.exc import DBAPIError

revision = '0005_search_indexes'
down_revision = '0004_canned_merges'
branch_labels = None
depends_on = None

# Not alembic's logger: it has a NullHandler, so an unconfigured CLI would say nothing.
log = logging.getLogger("inbox.search")

OPEN = "resolved_entry_id IS NULL"
# (table, column) pairs the search box reads; inbox/search.py names the same ones.
SEARCHED = (("message", "text"), ("contact", "name"), ("identity", "value"),
            ("conversation", "subject"))


def upgrade() -> None:
    # The FAQ editor's newest open unanswered questions, without walking resolved ones.
    op.create_index("ix_faq_unanswered_open", "faq_unanswered", ["id"], unique=False,
                    sqlite_where=sa.text(OPEN), postgresql_where=sa.text(OPEN))
    conn = op.get_bind()
    if conn.dialect.name == "sqlite":
        _sqlite_upgrade(conn)
    elif conn.dialect.name == "postgresql":
        _postgres_upgrade(conn)


def downgrade() -> None:
    op.execute("DROP INDEX IF EXISTS ix_faq_unanswered_open")
    conn = op.get_bind()
    for table, column in SEARCHED:
        if conn.dialect.name == "sqlite":
            for trigger in ("insert", "delete", "update"):
                conn.exec_driver_sql(f'DROP TRIGGER IF EXISTS "{table}_fts_{trigger}"')
            conn.exec_driver_sql(f'DROP TABLE IF EXISTS "{table}_fts"')
        elif conn.dialect.name == "postgresql":
            # The extension stays: other databases' objects may use it, and it is harmless.
            conn.exec_driver_sql(f'DROP INDEX IF EXISTS "ix_{table}_{column}_trgm"')


# ---------------------------------------------------------------------------- SQLite


def _sqlite_has_trigram(conn: Connection) -> bool:
    try:
        # A failed CREATE does not end SQLite's transaction, so no savepoint is needed.
        conn.exec_driver_sql(
            "CREATE VIRTUAL TABLE temp.fts5_trigram_probe USING fts5(x, tokenize='trigram case_sensitive 0')")
    except DBAPIError as exc:
        log.warning("search: this SQLite build has no FTS5 trigram tokenizer (%s; needs SQLite "
                    ">= 3.34 with FTS5); the search box will scan the tables instead", exc.orig)
        return False
    conn.exec_driver_sql("DROP TABLE temp.fts5_trigram_probe")
    return True


def _sqlite_triggers(table: str, column: str) -> list[str]:
    fts = f"{table}_fts"
    # A NULL or empty value has nothing to index, and each FTS5 table written in a
    # transaction costs ~100 us of CPU at commit: skipping them leaves a new SMS customer's
    # first message (no subject, often no name) one FTS write instead of four.
    add = (f'INSERT INTO "{fts}"(rowid, "{column}") SELECT new.id, new."{column}" '
           f"WHERE coalesce(new.\"{column}\", '') <> '';")
    remove = (f'INSERT INTO "{fts}"("{fts}", rowid, "{column}") '
              f"SELECT 'delete', old.id, old.\"{column}\" WHERE coalesce(old.\"{column}\", '') <> '';")
    return [
        f'CREATE TRIGGER "{fts}_insert" AFTER INSERT ON "{table}" BEGIN {add} END',
        f'CREATE TRIGGER "{fts}_delete" AFTER DELETE ON "{table}" BEGIN {remove} END',
        (f'CREATE TRIGGER "{fts}_update" AFTER UPDATE OF "{column}" ON "{table}" '
         f'WHEN old."{column}" IS NOT new."{column}" BEGIN {remove} {add} END'),
    ]


def _sqlite_upgrade(conn: Connection) -> None:
    if not _sqlite_has_trigram(conn):
        return
    for table, column in SEARCHED:
        fts = f"{table}_fts"
        # External content: the index only, the text stays in `table` (no second copy).
        conn.exec_driver_sql(
            f'CREATE VIRTUAL TABLE "{fts}" USING fts5("{column}", content=\'{table}\', '
            "content_rowid='id', columnsize=0, tokenize='trigram case_sensitive 0')")
        for statement in _sqlite_triggers(table, column):
            conn.exec_driver_sql(statement)
        conn.exec_driver_sql(f"INSERT INTO \"{fts}\"(\"{fts}\") VALUES ('rebuild')")


# ---------------------------------------------------------------------------- PostgreSQL


def _postgres_upgrade(conn: Connection) -> None:
    try:
        with conn.begin_nested():  # a refused CREATE EXTENSION must not end the migration
            conn.exec_driver_sql("CREATE EXTENSION IF NOT EXISTS pg_trgm")
    except DBAPIError as exc:
        log.warning("search: could not create the pg_trgm extension (%s); the search box will "
                    "scan the tables. To index it later, a superuser runs CREATE EXTENSION pg_trgm "
                    "in this database, then CREATE INDEX CONCURRENTLY ix_message_text_trgm ON "
                    "message USING gin (lower(text) gin_trgm_ops), and the same for contact.name, "
                    "identity.value and conversation.subject", exc.orig)
        return
    for table, column in SEARCHED:
        conn.exec_driver_sql(
            f'CREATE INDEX IF NOT EXISTS "ix_{table}_{column}_trgm" ON "{table}" '
            f'USING gin (lower("{column}") gin_trgm_ops)')
