"""In-process fan-out of committed events to subscribers (agent and visitor sockets).

One bounded queue per subscriber (python-websockets' broadcast pattern): `deliver`
never waits; a subscriber whose queue is full is told to resync and dropped, so one slow
socket never slows ingest or the others. Cross-process delivery goes through a bus
(`inbox.bus`) that calls `deliver` in every process.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable, Iterable

from inbox.events import EventOut

log = logging.getLogger(__name__)

EventFilter = Callable[[EventOut], bool]

# Routing, not broadcast: every event goes to the topics it concerns, and a subscriber
# is only asked about events of its topics. Agents listen on ALL; a customer's own
# socket on its `customer_topic`, so 5,000 idle visitors cost ingest nothing.
ALL = "all"


def customer_topic(channel: str, address: str) -> str:
    """The topic of one customer's own sockets on a channel."""
    return f"customer:{channel}:{address}"


def conversation_topic(conversation_id: int) -> str:
    """The topic of sockets following one conversation (typing, presence)."""
    return f"conversation:{conversation_id}"


def topics_of(event: EventOut) -> set[str]:
    """The topics an event concerns."""
    topics = {ALL}
    if event.conversation_id is not None:
        topics.add(conversation_topic(event.conversation_id))
    conversation = event.payload.get("conversation")
    if isinstance(conversation, dict) and conversation.get("customer_address"):
        topics.add(customer_topic(str(conversation.get("channel")), str(conversation["customer_address"])))
    return topics


class Resync(Exception):
    """The subscriber fell behind and was dropped; it must reload (or replay by seq)."""


_RESYNC = object()


class Subscription:
    """A subscriber's bounded queue. Iterate it; `Resync` is raised when it overflowed."""

    def __init__(self, hub: Hub, accepts: EventFilter, maxsize: int, topics: set[str]) -> None:
        self._hub = hub
        self.accepts = accepts
        self.topics = topics
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

    def follow(self, topic: str) -> None:
        """Also receive the events of `topic`."""
        if not self.closed and topic not in self.topics:
            self.topics.add(topic)
            self._hub._index.setdefault(topic, set()).add(self)

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
        self._index: dict[str, set[Subscription]] = {}

    def subscribe(self, accepts: EventFilter | None = None, *, topics: Iterable[str] = (ALL,),
                  maxsize: int | None = None) -> Subscription:
        """A new subscription to the later events of `topics` that `accepts` returns True for."""
        sub = Subscription(self, accepts or (lambda _e: True), maxsize or self.queue_size,
                           set(topics))
        self._subscribers.add(sub)
        for topic in sub.topics:
            self._index.setdefault(topic, set()).add(sub)
        return sub

    def _remove(self, sub: Subscription) -> None:
        self._subscribers.discard(sub)
        for topic in sub.topics:
            members = self._index.get(topic)
            if members is not None:
                members.discard(sub)
                if not members:
                    del self._index[topic]

    def deliver(self, event: EventOut) -> None:
        """Hand `event` to the interested subscribers of its topics; never blocks."""
        targets: set[Subscription] = set()
        for topic in topics_of(event):
            targets.update(self._index.get(topic, ()))
        for sub in targets:
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
