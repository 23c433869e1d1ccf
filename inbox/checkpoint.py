"""SQLite WAL checkpoints from a connection of their own, off the commit path.

SQLite checkpoints automatically inside the connection that commits, once the WAL holds
`wal_autocheckpoint` pages (1,000 by default): that commit copies the WAL into the
database file and fsyncs both before it returns. The server has one pooled connection
(`inbox.db.make_engine`), so every request queued behind that commit waits too. With
the FTS5 trigram indexes (migration 0005) a message writes ~23 WAL pages, so at 100
msg/s this happened every ~40 commits; on the shared bench machine one took 7 ms at the
median, 26 ms at p99 and up to 83 ms (bench/scale_bench.py scenario B).

`Checkpointer` runs `PRAGMA wal_checkpoint(PASSIVE)` every `interval` seconds on its own
connection and thread. A passive checkpoint never waits for or blocks readers and
writers: the serving connection keeps committing while it copies and fsyncs. When it has
copied every frame and nothing was committed meanwhile, the next commit starts the WAL
over from its beginning, as after an automatic checkpoint.

The serving connection keeps an automatic checkpoint, at `FALLBACK_PAGES`: if commits
never leave the checkpointer a quiet moment to finish (a sustained flood) or it stopped,
the WAL still cannot grow without bound, and the commit that checkpoints then copies
only what the checkpointer has not.

Durability is SQLite's, unchanged: a commit is in the WAL (the OS has it) before the
webhook is answered, so a killed process loses nothing; the checkpoint fsyncs the WAL
before copying and the database file after (`synchronous=NORMAL`), as the automatic one
does.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Self

import aiosqlite
from sqlalchemy.engine import make_url

from inbox.periodic import Periodic


# The serving connection's own checkpoint threshold while a `Checkpointer` runs (~40 MB
# of WAL). Measured at a paced 100 msg/s (scale_bench scenario B, ~2,300 WAL pages/s):
# once customers are known nearly every round finds a quiet moment and the WAL starts
# over; while new customers' first messages commit every few ms it rarely does, and the
# WAL reaches this about once per 10 s run, when one commit copies what the checkpointer
# has not yet (3-9 ms, against ~25 full checkpoints of 8-90 ms per run before).
FALLBACK_PAGES = 10_000

# How often to checkpoint. A round with nothing new costs a shared-memory read; one that
# copies costs two fsyncs, on the checkpointer's thread.
INTERVAL_SECONDS = 0.2


@dataclass(frozen=True)
class Checkpoint:
    """One checkpoint's outcome, as `PRAGMA wal_checkpoint` reports it."""

    busy: bool
    """Another connection was checkpointing: this one did nothing."""
    wal_pages: int
    """Frames in the WAL (since it last started over) when the checkpoint began."""
    copied: int
    """Of those, how many are now in the database file."""

    @property
    def complete(self) -> bool:
        """Every frame the WAL held is in the database file."""
        return not self.busy and self.copied == self.wal_pages


def database_path(url: str) -> str | None:
    """The file of a SQLite URL, or None (another database, or SQLite in memory)."""
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite":
        return None
    path = parsed.database
    if not path or path == ":memory:" or path.startswith("file::memory:"):
        return None
    return path


class Checkpointer:
    """Checkpoints one SQLite database's WAL every `interval` seconds until stopped."""

    def __init__(self, path: str, *, interval: float = INTERVAL_SECONDS) -> None:
        self.path = path
        self.interval = interval
        self._conn: aiosqlite.Connection | None = None
        self._rounds = Periodic("WAL checkpoint", interval, self.checkpoint)

    async def open(self) -> Self:
        """Connect (autocommit, so the connection never holds a snapshot between rounds)."""
        conn = aiosqlite.connect(self.path, isolation_level=None, timeout=5)
        # A daemon thread, as inbox.db (and SQLAlchemy) make the engine's: a checkpointer
        # left open never keeps the process from exiting.
        thread = getattr(conn, "_thread", None)
        if thread is not None:
            thread.daemon = True
        self._conn = await conn
        # The checkpoint syncs as this connection's setting says: the same as the
        # serving connection's (inbox.db.make_engine), so the same durability.
        await self._conn.execute("PRAGMA synchronous=NORMAL")
        return self

    async def checkpoint(self) -> Checkpoint:
        """Copy what the WAL holds into the database file, without waiting for anyone.

        A file not in WAL mode has nothing to checkpoint: `wal_pages` and `copied` are -1.
        """
        busy, wal_pages, copied = await self._query("PRAGMA wal_checkpoint(PASSIVE)")
        if wal_pages == -1:
            # This connection learns that the file is in WAL mode (set by the engine,
            # maybe after it connected) only when it next reads: read, then try again.
            await self._query("PRAGMA schema_version")
            busy, wal_pages, copied = await self._query("PRAGMA wal_checkpoint(PASSIVE)")
        return Checkpoint(busy=bool(busy), wal_pages=wal_pages, copied=copied)

    async def _query(self, sql: str) -> tuple[int, ...]:
        if self._conn is None:
            raise RuntimeError("Checkpointer.checkpoint() before open()")
        async with self._conn.execute(sql) as cursor:
            row = await cursor.fetchone()
        assert row is not None  # both pragmas answer one row
        return tuple(row)

    def start(self) -> None:
        """Checkpoint every `interval` seconds in a task, from now until `stop()` (a
        failed checkpoint is logged: the fallback still bounds the WAL)."""
        self._rounds.start()

    async def stop(self) -> None:
        """End the task (a checkpoint under way finishes first) and close the connection."""
        await self._rounds.stop()
        if self._conn is not None:
            await self._conn.close()
            self._conn = None
