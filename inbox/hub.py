"""In-process fan-out of committed events to subscribers (agent and visitor sockets).

One bounded queue per subscriber (python-websockets' broadcast pattern): `deliver`
never waits; a subscriber whose queue is full is told to resync and dropped, so one slow
socket never slows ingest or the others. Cross-process delivery goes through a bus
(`inbox.bus`) that calls `deliver` in every process.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable

from inbox.events import EventOut

log = logging.getLogger(__name__)

EventFilter = Callable[[EventOut], bool]


class Resync(Exception):
    """The subscriber fell behind and was dropped; it must reload (or replay by seq)."""


_RESYNC = object()


class Subscription:
    """A subscriber's bounded queue. Iterate it; `Resync` is raised when it overflowed."""

    def __init__(self, hub: Hub, accepts: EventFilter, maxsize: int) -> None:
        self._hub = hub
        self.accepts = accepts
        self._queue: asyncio.Queue[object] = asyncio.Queue(maxsize=maxsize)
        self.overflowed = False
        self.closed = False

    def offer(self, event: EventOut) -> None:
        """Queue `event` without waiting; on overflow, mark resync and unsubscribe."""
        if self.closed:
            return
        try:
            self._queue.put_nowait(event)
        except asyncio.QueueFull:
            self.force_resync()

    def force_resync(self) -> None:
        """Drop what is queued and make the next `get` raise `Resync`."""
        if self.closed:
            return
        self.overflowed = True
        self._drain()
        self._queue.put_nowait(_RESYNC)
        self.close()

    def _drain(self) -> None:
        while not self._queue.empty():
            self._queue.get_nowait()

    def close(self) -> None:
        """Stop receiving events (idempotent)."""
        if not self.closed:
            self.closed = True
            self._hub._remove(self)

    async def get(self) -> EventOut:
        """The next event; raises `Resync` once the subscription overflowed."""
        item = await self._queue.get()
        if item is _RESYNC:
            raise Resync("subscriber fell behind")
        assert isinstance(item, EventOut)
        return item

    def get_nowait(self) -> EventOut | None:
        """The next queued event, or None when the queue is empty."""
        if self._queue.empty():
            return None
        item = self._queue.get_nowait()
        if item is _RESYNC:
            raise Resync("subscriber fell behind")
        assert isinstance(item, EventOut)
        return item

    def __aiter__(self) -> AsyncIterator[EventOut]:
        return self._iterate()

    async def _iterate(self) -> AsyncIterator[EventOut]:
        while True:
            yield await self.get()


class Hub:
    """Delivers events to local subscribers whose filter accepts them."""

    def __init__(self, *, queue_size: int = 1000) -> None:
        self.queue_size = queue_size
        self._subscribers: set[Subscription] = set()

    def subscribe(self, accepts: EventFilter | None = None, *, maxsize: int | None = None) -> Subscription:
        """A new subscription receiving every later event that `accepts` returns True for."""
        sub = Subscription(self, accepts or (lambda _e: True), maxsize or self.queue_size)
        self._subscribers.add(sub)
        return sub

    def _remove(self, sub: Subscription) -> None:
        self._subscribers.discard(sub)

    def deliver(self, event: EventOut) -> None:
        """Hand `event` to every interested local subscriber; never blocks."""
        for sub in list(self._subscribers):
            try:
                if sub.accepts(event):
                    sub.offer(event)
            except Exception:  # a broken filter must not stop the fan-out
                log.exception("subscriber filter failed")

    def resync_all(self) -> None:
        """Tell every local subscriber to resync (events may have been missed)."""
        for sub in list(self._subscribers):
            sub.force_resync()

    @property
    def subscriber_count(self) -> int:
        """How many local subscriptions are live."""
        return len(self._subscribers)
