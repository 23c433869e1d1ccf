"""Reading conversations' view states from the database, for routing (`StateTracker.warm`).

A worker that starts, or that lost the bus and may have missed events, knows nothing of
where conversations stand; without help, each conversation's next event would go to
every watching socket once (its state before the change is unknown). This reads the
stored state of the most recently active conversations and the seq they are as of, in
one statement: one snapshot on PostgreSQL (READ COMMITTED snapshots per statement) and
on SQLite, so the states hold exactly the events up to that seq (seq order is commit
order: `store.add_event`). Conversations past the bound stay unknown.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

from sqlalchemy import func, select

from inbox.models import Conversation, Event
from inbox.routing import ViewState

# The most recently active conversations read per warm-up. 20,000 rows of a 100,000-
# conversation SQLite inbox take ~150-300 ms of CPU, half of it in the database thread;
# the event loop's share comes in slices of SLICE rows (~3 ms each). Older conversations
# rarely get an event, and when one does it goes to every watcher once.
WARM_LIMIT = 20_000
# Rows turned into states between two yields to the event loop.
SLICE = 2_000

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
