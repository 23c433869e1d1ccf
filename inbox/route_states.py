"""Reloading conversations' view states from the database, for routing (`StateTracker.warm`).

A worker that starts, or that lost the bus and may have missed events, knows nothing of
where conversations stand; without help, each conversation's next event would go to
every watching socket once (its state before the change is unknown). This reads the
stored state of the most recently active conversations and the seq they are as of, in
one statement: one snapshot on PostgreSQL (READ COMMITTED snapshots per statement) and
on SQLite, so the states hold exactly the events up to that seq (seq order is commit
order: `store.add_event`). Conversations past the bound stay unknown.

`Reloader` runs the read while the hub's sequencer holds events, then releases them
from the snapshot's seq on: at start (the first socket) and after every resync (the bus
reconnected; events may have been missed), so routing never guesses from a stale state.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from sqlalchemy import func, select

from inbox.models import Conversation, Event
from inbox.routing import StateTracker, ViewState
from inbox.sequencer import Sequencer

log = logging.getLogger(__name__)

# The most recently active conversations read per warm-up. 20,000 rows of a 100,000-
# conversation SQLite inbox take ~150-300 ms of CPU, half of it in the database thread;
# the event loop's share comes in slices of SLICE rows (~3 ms each). Older conversations
# rarely get an event, and when one does it goes to every watcher once.
WARM_LIMIT = 20_000
# Rows turned into states between two yields to the event loop.
SLICE = 2_000
# How long events may wait for the read; past it they flow again, routed conservatively
# (an unknown state goes to every watcher).
RELOAD_TIMEOUT = 5.0

States = list[tuple[int, ViewState]]
ReadStates = Callable[[int], Awaitable[tuple[int, States]]]


def state_reader(sessions: Callable[[], Any]) -> ReadStates:
    """A `ReadStates`: `read(limit)` returns `(as_of, states)`, the view states of the
    `limit` most recently active conversations after every event up to seq `as_of`
    and none later (`as_of` is 0 on an empty log)."""

    async def read(limit: int) -> tuple[int, States]:
        last = select(func.coalesce(func.max(Event.seq), 0)).scalar_subquery()
        query = (select(Conversation.id, Conversation.status, Conversation.assignee_id,  # type: ignore[call-overload]
                        Conversation.channel, Conversation.handled_by, last)
                 .order_by(Conversation.last_activity_at.desc(),  # type: ignore[attr-defined]
                           Conversation.id.desc())  # type: ignore[union-attr]
                 .limit(limit))
        states: States = []
        interned: dict[ViewState, ViewState] = {}
        as_of: int | None = None
        async with sessions() as session:
            # Streamed in slices, yielding to the event loop between them: turning 20,000
            # rows into objects at once would hold it for ~30-60 ms.
            result = await session.stream(query)
            async for part in result.partitions(SLICE):
                for row in part:
                    state = ViewState(row[1], row[2], row[3], row[4])
                    states.append((row[0], interned.setdefault(state, state)))
                    if as_of is None:
                        as_of = int(row[5] or 0)
                await asyncio.sleep(0)
            if as_of is None:  # no conversation yet
                empty = await session.exec(select(func.coalesce(func.max(Event.seq), 0)))  # type: ignore[call-overload]
                as_of = int(empty.scalar() or 0)
        return as_of, states

    return read


class Reloader:
    """Reloads a `StateTracker` from the database while a `Sequencer` holds events."""

    def __init__(self, states: StateTracker, sequencer: Sequencer, *, limit: int = WARM_LIMIT,
                 read: ReadStates | None = None, timeout: float = RELOAD_TIMEOUT) -> None:
        self.states = states
        self.sequencer = sequencer
        self.limit = limit
        self.read = read  # None: nothing to read from (routing stays conservative)
        self.timeout = timeout
        self.reloads = 0  # reads that succeeded
        self._task: asyncio.Task[None] | None = None

    @property
    def running(self) -> bool:
        """Whether a read is under way (events are held meanwhile)."""
        return self._task is not None

    def spawn(self) -> None:
        """Start a reload in the background (superseding one under way); events are held
        from now on until it is done. Does nothing without `read` or a running loop."""
        if self.read is None:
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return
        if self._task is not None:
            self._task.cancel()
        self.sequencer.pause()  # from now: nothing routed before the states are in
        self._task = loop.create_task(self._reload())

    async def reload(self) -> None:
        """Read the stored view states of the `limit` most recently active conversations,
        as of a seq S (one snapshot), into the tracker, then release events again from
        S+1 on (held meanwhile, gaps read from the log), so each event after S has a
        known "previous" and goes to the sockets whose views it concerns, not to every
        watcher. A failed or slow (`timeout`) read leaves routing conservative, never
        stalled. Returns when done (or superseded by a later reload)."""
        self.spawn()
        if self._task is not None:
            await asyncio.wait({self._task})

    async def _reload(self) -> None:
        assert self.read is not None
        as_of: int | None = None
        try:
            async with asyncio.timeout(self.timeout):
                as_of, states = await self.read(self.limit)
            self.states.warm(states, as_of=as_of)
            self.reloads += 1
        except asyncio.CancelledError:
            as_of = None
            raise
        except Exception:  # an optimisation: without it events go to every watcher once
            as_of = None
            log.exception("reading conversation states for routing failed (or took over %s s)",
                          self.timeout)
        finally:
            if self._task is asyncio.current_task():  # not superseded by a later reload
                self._task = None
                self.sequencer.resume(at=None if as_of is None else as_of + 1)
