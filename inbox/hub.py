"""In-process fan-out of committed events to subscribers (agent and visitor sockets).

One bounded queue per subscriber (python-websockets' broadcast pattern): `deliver`
never waits; a subscriber whose queue is full is told to resync and dropped, so one slow
socket never slows ingest or the others. Cross-process delivery goes through a bus
(`inbox.bus`) that calls `deliver` in every process.

Committed events pass a per-process `Sequencer` first, so subscribers receive them in
seq order with no gap (a gap is filled from the event log once per process, not once
per socket); ephemeral ones (typing, viewing, hints) go straight through. Then routing
(`inbox.routing`): each event goes to the subscribers listed under its topics only, and
an agent's `Watch` decides on those. The router's states are reloaded from the database
at start and after every `resync_all` (`inbox.route_states.Reloader`).

Per delivered frame the hub does a filter and a deque append; the socket's writer wakes
once for everything queued meanwhile (`Subscription.batch`), and heartbeats come from
one timer per process, not one per socket per wait.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections import deque
from collections.abc import AsyncIterator, Callable, Iterable

from inbox.events import EventOut
from inbox.route_states import WARM_LIMIT, ReadStates, Reloader
from inbox.routing import (
    ALL,
    EPHEMERAL,
    MAX_CONTACTS,
    StateTracker,
    Watch,
    contact_topic,
    conversation_topic,
    customer_topic,
    event_topics,
)
from inbox.sequencer import Fetch, Sequencer

log = logging.getLogger(__name__)

EventFilter = Callable[[EventOut], bool]

__all__ = ["ALL", "Hub", "Resync", "Subscription", "contact_topic", "conversation_topic",
           "customer_topic", "topics_of"]


def topics_of(event: EventOut) -> set[str]:
    """The topics an event concerns (routing state aside: see `inbox.routing`)."""
    return event_topics(event, EPHEMERAL)


class Resync(Exception):
    """The subscriber fell behind and was dropped; it must reload (or replay by seq)."""


class Subscription:
    """A subscriber's bounded queue. Iterate it (or take `batch`es); `Resync` is raised
    once when it overflowed.

    A plain deque and one waiter future, not an `asyncio.Queue`: a socket's writer wakes
    once for everything queued meanwhile (`batch`), and its heartbeat comes from the
    hub's one timer (`poke`), not from a timer per wait.
    """

    def __init__(self, hub: Hub, accepts: EventFilter, maxsize: int, topics: set[str]) -> None:
        self._hub = hub
        self.accepts = accepts
        self.topics = topics  # as listed in the hub's index (`set_watch` sets them for a watch)
        self.watch: Watch | None = None
        self.maxsize = maxsize
        self._items: deque[EventOut] = deque()
        self._waiter: asyncio.Future[None] | None = None
        self._resync = False  # raise Resync at the next get (once)
        self._poked = False  # a heartbeat is due: `batch` returns [] once
        self.heartbeat: float | None = None  # seconds of quiet before a heartbeat (jittered)
        self.quiet_since = 0.0  # loop time of the last batch taken or heartbeat due
        self.overflowed = False
        self.closed = False

    def offer(self, event: EventOut) -> None:
        """Queue `event` without waiting; on overflow, mark resync and unsubscribe."""
        if self.closed:
            return
        if len(self._items) >= self.maxsize:
            self.force_resync()
            return
        self._items.append(event)
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def force_resync(self) -> None:
        """Drop what is queued and make the next `get` raise `Resync`."""
        if self.closed:
            return
        self.overflowed = self._resync = True
        self._items.clear()
        self.close()
        self._wake()

    def poke(self) -> None:
        """Wake a waiting `batch` with nothing (the hub's heartbeat timer: one is due)."""
        self._poked = True
        self._wake()

    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    async def _wait(self) -> None:
        waiter = self._waiter = asyncio.get_running_loop().create_future()
        try:
            await waiter
        finally:
            self._waiter = None

    def _check_resync(self) -> None:
        if self._resync:
            self._resync = False
            raise Resync("subscriber fell behind")

    def follow(self, topic: str) -> None:
        """Also receive the events of `topic`."""
        if not self.closed and topic not in self.topics:
            self.topics.add(topic)
            self._hub._index.setdefault(topic, set()).add(self)

    def set_watch(self, watch: Watch | None) -> None:
        """Receive only what `watch` asks for from now on (None: every event, as before
        any watch). Events already queued stay queued."""
        if self.closed:
            return
        self._hub._unindex(self)
        self.watch = watch
        self.topics = watch.topics() if watch is not None else {ALL}
        self._hub._reindex(self)

    def show_contact(self, contact_id: int) -> None:
        """The client now shows a conversation of this contact: its later contact events
        concern this watcher too (when it listed its contacts; up to MAX_CONTACTS)."""
        ids = self.watch.contact_ids if self.watch is not None else None
        if ids is not None and contact_id not in ids and len(ids) < MAX_CONTACTS:
            ids.add(contact_id)
            self.follow(contact_topic(contact_id))

    def close(self) -> None:
        """Stop receiving events (idempotent)."""
        if not self.closed:
            self.closed = True
            self._hub._remove(self)

    async def get(self) -> EventOut:
        """The next event; raises `Resync` once the subscription overflowed."""
        while not self._items:
            self._check_resync()
            await self._wait()
        return self._items.popleft()

    def get_nowait(self) -> EventOut | None:
        """The next queued event, or None when the queue is empty."""
        if self._items:
            return self._items.popleft()
        self._check_resync()
        return None

    async def batch(self) -> list[EventOut]:
        """Every queued event (at least one), oldest first; [] when a heartbeat is due
        (`Hub.subscribe(heartbeat=)`); raises `Resync` once the subscription overflowed."""
        while not self._items:
            self._check_resync()
            if self._poked:
                self._poked = False
                return []
            await self._wait()
        items = list(self._items)
        self._items.clear()
        if self.heartbeat is not None:
            self._poked = False  # what is sent now does a heartbeat's job
            self.quiet_since = self._hub.now()
        return items

    def __aiter__(self) -> AsyncIterator[EventOut]:
        return self._iterate()

    async def _iterate(self) -> AsyncIterator[EventOut]:
        while True:
            yield await self.get()


class Hub:
    """Delivers events, in seq order, to the local subscribers they concern."""

    def __init__(self, *, queue_size: int = 1000, fetch: Fetch | None = None,
                 warm_limit: int = WARM_LIMIT) -> None:
        self.queue_size = queue_size
        self._subscribers: set[Subscription] = set()
        self._index: dict[str, set[Subscription]] = {}
        self.states = StateTracker()
        self.sequencer = Sequencer(self._fan_out, fetch=fetch)
        self.considered = 0  # subscriptions asked about an event, summed (routing cost)
        self.reloader = Reloader(self.states, self.sequencer, limit=warm_limit)
        self._beating: set[Subscription] = set()  # subscriptions with a heartbeat
        self._beat_timer: asyncio.TimerHandle | None = None
        self._beat_period = 0.0

    def use_log(self, fetch: Fetch, *, states: ReadStates | None = None) -> None:
        """Let the sequencer read gaps from the event log (`fetch(after, upto)`) and,
        with `states`, reload routing states from the database now and after every
        `resync_all` (`Reloader`)."""
        self.sequencer.fetch = fetch
        if states is not None:
            self.reloader.read = states
            self.reloader.spawn()

    async def reload_states(self) -> None:
        """Reload the routing states from the database now (`Reloader.reload`)."""
        await self.reloader.reload()

    @property
    def reloading(self) -> bool:
        """Whether routing states are being read (events are held meanwhile)."""
        return self.reloader.running

    @property
    def reloads(self) -> int:
        """How often routing states were read from the database."""
        return self.reloader.reloads

    @property
    def reads_log(self) -> bool:
        """Whether gaps are filled from the event log."""
        return self.sequencer.fetch is not None

    def subscribe(self, accepts: EventFilter | None = None, *, topics: Iterable[str] = (ALL,),
                  maxsize: int | None = None, watch: Watch | None = None,
                  heartbeat: float | None = None) -> Subscription:
        """A new subscription to the later events of `topics` that `accepts` returns True
        for; with `watch`, to what that watch asks for instead of `topics`. With
        `heartbeat` (seconds, jittered +-20% per subscription), its `batch` returns []
        after that long without events, so the socket can send a ping."""
        sub = Subscription(self, accepts or (lambda _e: True), maxsize or self.queue_size,
                           set(topics))
        self._subscribers.add(sub)
        if watch is None:
            self._reindex(sub)
        else:
            sub.set_watch(watch)
        if heartbeat is not None:
            self._beat(sub, heartbeat)
        return sub

    def now(self) -> float:
        """The event loop's clock (heartbeat bookkeeping)."""
        return asyncio.get_running_loop().time()

    def _beat(self, sub: Subscription, seconds: float) -> None:
        # One timer for the whole process, not one per socket per wait: every quarter
        # heartbeat it pokes the subscriptions quiet for their (jittered) interval.
        loop = asyncio.get_running_loop()
        sub.heartbeat = seconds * random.uniform(0.8, 1.2)
        sub.quiet_since = loop.time()
        self._beating.add(sub)
        period = seconds / 4
        if self._beat_timer is None or period < self._beat_period:
            if self._beat_timer is not None:
                self._beat_timer.cancel()
            self._beat_period = period
            self._beat_timer = loop.call_later(period, self._tick)

    def _tick(self) -> None:
        self._beat_timer = None
        if not self._beating:
            return
        loop = asyncio.get_running_loop()
        now = loop.time()
        for sub in self._beating:
            if sub.heartbeat is not None and now - sub.quiet_since >= sub.heartbeat:
                sub.quiet_since = now
                sub.poke()
        self._beat_timer = loop.call_later(self._beat_period, self._tick)

    def _reindex(self, sub: Subscription) -> None:
        for topic in sub.topics:
            self._index.setdefault(topic, set()).add(sub)

    def _unindex(self, sub: Subscription) -> None:
        for topic in sub.topics:
            members = self._index.get(topic)
            if members is not None:
                members.discard(sub)
                if not members:
                    del self._index[topic]

    def _remove(self, sub: Subscription) -> None:
        self._subscribers.discard(sub)
        self._beating.discard(sub)
        self._unindex(sub)

    def deliver(self, event: EventOut) -> None:
        """Hand `event` to the subscribers it concerns, committed ones in seq order; never
        blocks (an event after a gap waits in the sequencer, not in the caller)."""
        if event.seq is None:
            self._fan_out(event)
        else:
            self.sequencer.push(event)

    def _fan_out(self, event: EventOut) -> None:
        route = self.states.route(event) if event.seq is not None else EPHEMERAL
        targets: set[Subscription] = set()
        index = self._index
        for topic in event_topics(event, route):
            members = index.get(topic)
            if members:
                targets.update(members)
        self.considered += len(targets)
        for sub in targets:
            try:
                watch = sub.watch
                if watch is not None:
                    if not watch.accepts(event, route):
                        continue
                    if route.contact_id is not None:
                        sub.show_contact(route.contact_id)
                if sub.accepts(event):
                    sub.offer(event)
            except Exception:  # a broken filter must not stop the fan-out
                log.exception("subscriber filter failed")

    def resync_all(self) -> None:
        """Tell every local subscriber to resync (events may have been missed), and
        reload the routing states from the database (`reload_states`)."""
        self.sequencer.reset()
        self.states.clear()
        for sub in list(self._subscribers):
            sub.force_resync()
        self.reloader.spawn()

    @property
    def subscriber_count(self) -> int:
        """How many local subscriptions are live."""
        return len(self._subscribers)
