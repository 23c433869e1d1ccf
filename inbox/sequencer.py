"""Committed events released in seq order, once per process, whoever published them.

Concurrent steps commit in seq order (`store.add_event`: one writer at a time on
SQLite, an advisory lock held to commit on PostgreSQL) but publish after commit, so
events reach a process out of order: from this worker's concurrent steps, and from other
workers over the bus. The sequencer holds an event that arrives after a gap for up to
`hold` seconds; when the missing seqs do not come, it reads the range from the event log
once for the whole process (not once per socket) and releases everything in order.

A seq the log does not have is a hole for good, and is skipped: on PostgreSQL a
transaction that drew a seq and rolled back leaves one (sequences are not
transactional), and since seq N+1 is drawn only after N's transaction ended (the lock),
a committed N+1 means N committed or never will. (SQLite reuses a rolled-back rowid, so
it has no holes.) The log read also recovers an event whose publisher died between
commit and publish.

An event below the next expected seq was either released already (a duplicate: dropped)
or, just after start or reset, came late from before the first one seen: it is
released at once, out of order, rather than lost.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Awaitable, Callable
from typing import Any

from inbox.events import EventOut

log = logging.getLogger(__name__)

# How long a gap may wait for its events to be published before the log is read. A
# concurrent step publishes within milliseconds of its commit; Redis adds well under 1 ms.
HOLD_SECONDS = 0.15
# Seqs remembered as released, to tell a duplicate from a late event.
REMEMBER = 20_000

Fetch = Callable[[int, int], Awaitable[list[EventOut]]]


class Sequencer:
    """Releases events to `release` in seq order; see the module docstring."""

    def __init__(self, release: Callable[[EventOut], None], *, hold: float = HOLD_SECONDS,
                 fetch: Fetch | None = None) -> None:
        self.release = release
        self.hold = hold
        # fetch(after, upto): the committed events with after < seq <= upto, in order.
        self.fetch = fetch
        self._next: int | None = None
        self._held: dict[int, EventOut] = {}
        self._done: set[int] = set()
        self._done_order: deque[int] = deque()
        self._timer: asyncio.TimerHandle | None = None
        self._recovering: asyncio.Task[None] | None = None
        self._paused = False
        self.fetches = 0  # log reads (one per lasting gap, per process)
        self.recovered = 0  # events found in the log, never published here
        self.skipped = 0  # seqs the log does not have (rolled back)
        self.late = 0  # released out of order (from before the first event seen)

    @property
    def next_seq(self) -> int | None:
        """The seq released next (None until the first event)."""
        return self._next

    @property
    def held(self) -> int:
        """How many events wait for a gap to fill."""
        return len(self._held)

    def push(self, event: EventOut) -> None:
        """Take a committed event; release it now or once the seqs before it are in."""
        seq = event.seq
        assert seq is not None, "ephemeral events bypass the sequencer"
        if self._next is None:
            if self._paused:  # `resume` decides where to start
                if seq not in self._done:
                    self._held.setdefault(seq, event)
                return
            self._next = seq
        if seq < self._next:
            if seq not in self._done:
                self.late += 1
                self._mark(seq)
                self.release(event)
            return
        if seq in self._held:
            return
        self._held[seq] = event
        if not self._paused:
            self._drain()

    def pause(self) -> None:
        """Hold every committed event until `resume` (while routing state is reloaded)."""
        self._paused = True
        self._cancel_timer()

    def resume(self, *, at: int | None = None) -> None:
        """Release again. With `at` and no position yet (just after start or `reset`),
        start at `at` (or at the first held event, when that is earlier): every event from
        there on is released in order, a gap read from the log as usual."""
        self._paused = False
        if self._next is None:
            starts = [*self._held, *([] if at is None else [at])]
            self._next = min(starts) if starts else None
        if self._held:
            self._drain()

    def reset(self) -> None:
        """Forget the position and drop what is held (every subscriber resyncs from the log)."""
        self._cancel_timer()
        if self._recovering is not None:
            self._recovering.cancel()
            self._recovering = None
        self._held.clear()
        self._next = None
        self._paused = False

    def _mark(self, seq: int) -> None:
        self._done.add(seq)
        self._done_order.append(seq)
        if len(self._done_order) > REMEMBER:
            self._done.discard(self._done_order.popleft())

    def _drain(self) -> None:
        if self._paused:
            return
        progressed = False
        assert self._next is not None
        while self._next in self._held:
            event = self._held.pop(self._next)
            self._mark(self._next)
            self._next += 1
            progressed = True
            self.release(event)
        if not self._held:
            self._cancel_timer()
        elif progressed or self._timer is None:
            self._arm()

    def _arm(self) -> None:
        self._cancel_timer()
        if self._recovering is not None:
            return  # the running log read re-arms when it is done
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:  # no loop (a synchronous caller): nothing could fill the gap
            self._skip_to_held()
            return
        self._timer = loop.call_later(self.hold, self._on_timeout)

    def _cancel_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _on_timeout(self) -> None:
        self._timer = None
        if not self._held or self._paused:
            return
        if self.fetch is None:
            log.warning("event seq %s never published and no event log to read: skipped",
                        self._next)
            self._skip_to_held()
            return
        self._recovering = asyncio.get_running_loop().create_task(self._recover())

    def _skip_to_held(self) -> None:
        if self._held and self._next is not None:
            first = min(self._held)
            for seq in range(self._next, first):
                self.skipped += 1
                self._mark(seq)
            self._next = first
            self._drain()

    async def _recover(self) -> None:
        assert self.fetch is not None and self._next is not None
        after, upto = self._next - 1, max(self._held)
        self.fetches += 1
        try:
            found = await self.fetch(after, upto)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("reading events %s..%s from the log failed; skipping the gap",
                          after + 1, upto)
            found = None
        self._recovering = None
        if self._next is None:  # reset meanwhile
            return
        if found is not None:
            for event in found:
                seq = event.seq
                if seq is not None and seq >= self._next and seq not in self._held:
                    self._held[seq] = event
                    self.recovered += 1
        if self._paused:
            return  # `resume` drains (and reads the log again for a hole still open)
        # Everything up to `upto` that committed is now held or released: the rest are holes.
        while self._next <= upto:
            if self._next in self._held:
                self._drain()
            else:
                log.info("event seq %s is not in the log (rolled back): skipped", self._next)
                self.skipped += 1
                self._mark(self._next)
                self._next += 1
        if self._held:
            self._drain()


def log_reader(sessions: Callable[[], Any], *, page: int = 500) -> Fetch:
    """A `Fetch` over the event table: the committed events with after < seq <= upto."""
    from inbox import store

    async def fetch(after: int, upto: int) -> list[EventOut]:
        out: list[EventOut] = []
        while after < upto:
            async with sessions() as session:
                events = await store.events_after(session, seq=after, limit=page)
            out.extend(e for e in events if (e.seq or 0) <= upto)
            if len(events) < page:
                break
            after = events[-1].seq or upto
        return out

    return fetch
