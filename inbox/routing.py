"""Which sockets an event concerns, decided by an index, not by asking every socket.

An event goes to *topics*: the conversation it is about, the customer's own web-chat
topic, and (for a conversation snapshot) one topic per view field of the conversation's
state now and before the change (`view:status:open`, `view:assignee:7`, ...). An agent
that sent a watch frame is listed under the single most selective topic of its view, its
own assignee topic, its open conversation and the contacts on its screen; the full
predicate (`Watch.accepts`) runs only on the events of those topics. An agent that sent
no watch frame listens on `ALL`, as before routing existed.

"Before the change" comes from the event (`previous`, set where a step changes a
conversation's view fields: inbox.conversation_ops) or else from `StateTracker`, the
last state this process saw, in seq order. When neither knows it (the first event of a
conversation since this process started), every watcher is asked: a conversation that
may have left a view must still reach the sockets that showed it.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, Final

from inbox.events import EventOut
from inbox.types import CHANNELS

ALL = "all"
# Every watching socket: events whose previous state is unknown, seq-less hints.
WATCHERS = "watchers"
# Watching sockets that take every contact event (no `contact_ids` in their watch).
CONTACTS = "contacts"

STATUSES = ("open", "pending", "snoozed", "resolved")
HANDLED_BY = ("bot", "human")
# A socket follows the contacts of conversations it was sent, up to this many; past it,
# later contacts' events are not routed to it (the list shows names from snapshots).
MAX_CONTACTS = 5000


def customer_topic(channel: str, address: str) -> str:
    """The topic of one customer's own sockets on a channel."""
    return f"customer:{channel}:{address}"


def conversation_topic(conversation_id: int) -> str:
    """The topic of sockets following one conversation (open thread, typing, presence)."""
    return f"conversation:{conversation_id}"


def contact_topic(contact_id: int) -> str:
    """The topic of sockets showing one contact."""
    return f"contact:{contact_id}"


@dataclass(frozen=True, slots=True)
class ViewState:
    """The fields of a conversation that decide which views it belongs to."""

    status: str | None
    assignee_id: int | None
    channel: str | None
    handled_by: str | None

    @classmethod
    def of(cls, snapshot: dict[str, Any]) -> ViewState:
        """The view state of a conversation snapshot (`conversation_out` or `previous`)."""
        assignee = snapshot.get("assignee_id")
        return cls(snapshot.get("status"), assignee if isinstance(assignee, int) else None,
                   snapshot.get("channel"), snapshot.get("handled_by"))

    def topics(self) -> tuple[str, ...]:
        """One topic per field: a view is listed under one of them."""
        assignee = "none" if self.assignee_id is None else str(self.assignee_id)
        return (f"view:assignee:{assignee}", f"view:status:{self.status}",
                f"view:channel:{self.channel}", f"view:handled_by:{self.handled_by}", "view:any")


class _Unknown:
    def __repr__(self) -> str:
        return "UNKNOWN"


UNKNOWN: Final = _Unknown()


@dataclass(frozen=True, slots=True)
class Route:
    """What routing needs to know of one event, computed once per process."""

    current: ViewState | None = None  # the conversation's state after the event
    previous: ViewState | None | _Unknown = None  # before it (None: a new conversation)
    contact_ids: tuple[int, ...] = ()  # the contact(s) a contact event is about
    contact_id: int | None = None  # the contact of the conversation snapshot


EPHEMERAL = Route()


class StateTracker:
    """The last view state of each conversation seen (bounded; oldest forgotten first).

    Fed in seq order (the hub's sequencer, or a replay), so "previous" is the state the
    event changed, whichever worker wrote it. Each state is kept with the seq it is as
    of: an event no newer than what is known (a late one, or one before a `warm`
    snapshot) learns nothing from it and changes nothing in it.
    """

    def __init__(self, limit: int = 100_000) -> None:
        self.limit = limit
        # conversation id -> (its view state, the seq that state is as of)
        self._states: dict[int, tuple[ViewState, int]] = {}
        self.as_of = 0  # the seq of the last `warm` snapshot (0: never warmed)

    def __len__(self) -> int:
        return len(self._states)

    def __contains__(self, conversation_id: object) -> bool:
        return conversation_id in self._states

    def clear(self) -> None:
        """Forget everything (events may have been missed)."""
        self._states.clear()
        self.as_of = 0

    def warm(self, states: Iterable[tuple[int, ViewState]], *, as_of: int) -> None:
        """Conversations' states as stored once every event up to seq `as_of` had
        committed and no later one had (one snapshot: `inbox.route_states`), so a
        conversation this process has not seen an event of since it started has a known
        "previous" for its events after `as_of`. A state seen since, at a later seq,
        takes precedence; the warmed states count against `limit` like any other."""
        interned: dict[ViewState, ViewState] = {}
        known = self._states
        for cid, state in states:
            seen = known.get(cid)
            if seen is None or seen[1] <= as_of:
                known[cid] = (interned.setdefault(state, state), as_of)
        while len(known) > self.limit:
            del known[next(iter(known))]
        self.as_of = max(self.as_of, as_of)

    def remember(self, conversation_id: int, state: ViewState, *, seq: int = 0) -> None:
        """Record `state` as the latest of `conversation_id`, as of event `seq`."""
        self._states.pop(conversation_id, None)
        self._states[conversation_id] = (state, seq)
        if len(self._states) > self.limit:
            del self._states[next(iter(self._states))]

    def route(self, event: EventOut) -> Route:
        """The route of the next event in seq order; updates the state it records."""
        payload = event.payload
        if event.type == "contact.updated":
            contact = payload.get("contact") or {}
            ids = tuple(i for i in (contact.get("id"), payload.get("merged_into")) if isinstance(i, int))
            return Route(contact_ids=ids)
        snapshot = payload.get("conversation")
        cid = event.conversation_id
        if not isinstance(snapshot, dict) or cid is None:
            return EPHEMERAL
        current = ViewState.of(snapshot)
        seq = event.seq or 0
        known = self._states.get(cid)
        newer = known is None or known[1] < seq  # False: the event is older than what we know
        previous: ViewState | None | _Unknown
        explicit = payload.get("previous")
        if isinstance(explicit, dict):
            previous = ViewState.of(explicit)
        elif event.type == "conversation.created" and snapshot.get("id") == cid:
            previous = None
        elif known is not None and newer:
            previous = known[0]
        else:
            previous = UNKNOWN
        if newer:
            self.remember(cid, current, seq=seq)
        contact_id = snapshot.get("contact_id")
        return Route(current=current, previous=previous,
                     contact_id=contact_id if isinstance(contact_id, int) else None)


def event_topics(event: EventOut, route: Route) -> set[str]:
    """The topics an event goes to."""
    topics = {ALL}
    if event.conversation_id is not None:
        topics.add(conversation_topic(event.conversation_id))
    conversation = event.payload.get("conversation")
    if isinstance(conversation, dict) and conversation.get("customer_address"):
        topics.add(customer_topic(str(conversation.get("channel")), str(conversation["customer_address"])))
    if event.seq is None:
        if event.conversation_id is None:
            topics.add(WATCHERS)  # hints such as order.updated
        return topics
    if route.contact_ids:
        topics.add(CONTACTS)
        topics.update(contact_topic(c) for c in route.contact_ids)
    if route.current is not None:
        topics.update(route.current.topics())
        if isinstance(route.previous, ViewState):
            topics.update(route.previous.topics())
        elif route.previous is UNKNOWN:
            topics.add(WATCHERS)
    return topics


# ---------------------------------------------------------------------------- views


@dataclass(frozen=True, slots=True)
class View:
    """A conversation list filter, as `GET /api/v1/conversations` takes it."""

    status: str | None = None
    assignee_id: int | None = None
    unassigned: bool = False
    channel: str | None = None
    handled_by: str | None = None

    def matches(self, state: ViewState) -> bool:
        """Does a conversation in `state` belong to this view?"""
        if self.status is not None and state.status != self.status:
            return False
        if self.assignee_id is not None and state.assignee_id != self.assignee_id:
            return False
        if self.unassigned and state.assignee_id is not None:
            return False
        if self.channel is not None and state.channel != self.channel:
            return False
        return self.handled_by is None or state.handled_by == self.handled_by

    def key(self) -> str:
        """The one topic to list a watcher under: every matching state has it, and it is
        the rarest we can tell (an agent's own queue before a channel before a status)."""
        if self.assignee_id is not None:
            return f"view:assignee:{self.assignee_id}"
        if self.channel is not None:
            return f"view:channel:{self.channel}"
        if self.status is not None and self.status != "open":
            return f"view:status:{self.status}"
        if self.unassigned:
            return "view:assignee:none"
        if self.status is not None:
            return f"view:status:{self.status}"
        if self.handled_by is not None:
            return f"view:handled_by:{self.handled_by}"
        return "view:any"

    def to_json(self) -> dict[str, Any]:
        """The view as a watch frame states it."""
        assignee: int | str | None = "none" if self.unassigned else self.assignee_id
        return {"status": self.status, "assignee": assignee, "channel": self.channel,
                "handled_by": self.handled_by}


@dataclass(slots=True)
class Watch:
    """What one agent's socket shows: a view, an open conversation, contacts on screen."""

    agent_id: int
    view: View = field(default_factory=View)
    conversation_id: int | None = None
    contact_ids: set[int] | None = None  # None: every contact event

    def topics(self) -> set[str]:
        """The topics to list this watcher under."""
        topics = {WATCHERS, self.view.key(), f"view:assignee:{self.agent_id}"}
        if self.conversation_id is not None:
            topics.add(conversation_topic(self.conversation_id))
        if self.contact_ids is None:
            topics.add(CONTACTS)
        else:
            topics.update(contact_topic(c) for c in self.contact_ids)
        return topics

    def accepts(self, event: EventOut, route: Route) -> bool:
        """Does this watcher need `event`? (Asked only for events of its topics.)"""
        cid = event.conversation_id
        if cid is not None and cid == self.conversation_id:
            return True
        if event.seq is None:
            return cid is None  # typing/viewing only for the open conversation; hints for all
        if route.contact_ids:
            return self.contact_ids is None or any(c in self.contact_ids for c in route.contact_ids)
        current = route.current
        if current is None:
            return False  # no snapshot (delivery status, notes): the open thread only
        if self.view.matches(current):
            return True
        previous = route.previous
        if previous is UNKNOWN:
            return True  # it may have been in the view: let the client decide
        if isinstance(previous, ViewState):
            if self.view.matches(previous):
                return True  # it left the view: the client drops it from the list
            return current.assignee_id == self.agent_id != previous.assignee_id
        return current.assignee_id == self.agent_id  # a new conversation given to them

    def to_json(self) -> dict[str, Any]:
        """The watch as the server acknowledges it."""
        return {"view": self.view.to_json(), "conversation_id": self.conversation_id,
                "contact_ids": None if self.contact_ids is None else sorted(self.contact_ids)}


class BadWatch(ValueError):
    """A watch frame that does not say what it should (the message says what was wrong)."""


def _choice(raw: dict[str, Any], key: str, allowed: Iterable[str]) -> str | None:
    value = raw.get(key)
    if value in (None, "", "all", "any"):
        return None
    if value not in allowed:
        raise BadWatch(f"view.{key} must be one of {', '.join(allowed)} or null, got {value!r}")
    return str(value)


def _id(value: Any, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise BadWatch(f"{what} must be a positive whole number, got {value!r}")
    return value


def parse_watch(frame: Any, *, agent_id: int) -> Watch:
    """The `Watch` a client frame `{"type": "watch", "view": {...}, "conversation_id",
    "contact_ids"?}` asks for; `BadWatch` says what is wrong with it."""
    if not isinstance(frame, dict):
        raise BadWatch("a watch is a JSON object")
    raw = frame.get("view") or {}
    if not isinstance(raw, dict):
        raise BadWatch('"view" must be an object like {"status": "open", "assignee": "me"}')
    unknown = set(raw) - {"status", "assignee", "channel", "handled_by"}
    if unknown:
        raise BadWatch(f"view has unknown fields: {', '.join(sorted(unknown))} "
                       "(expected status, assignee, channel, handled_by)")
    assignee = raw.get("assignee")
    assignee_id, unassigned = None, False
    if assignee == "me":
        assignee_id = agent_id
    elif assignee in ("none", "unassigned"):
        unassigned = True
    elif assignee not in (None, "", "all", "any"):
        assignee_id = _id(assignee, "view.assignee (me, none, all or an agent id)")
    view = View(status=_choice(raw, "status", STATUSES), assignee_id=assignee_id,
                unassigned=unassigned, channel=_choice(raw, "channel", CHANNELS),
                handled_by=_choice(raw, "handled_by", HANDLED_BY))
    conversation = frame.get("conversation_id")
    conversation_id = None if conversation is None else _id(conversation, "conversation_id")
    contacts = frame.get("contact_ids")
    contact_ids: set[int] | None = None
    if contacts is not None:
        if not isinstance(contacts, list) or len(contacts) > MAX_CONTACTS:
            raise BadWatch(f"contact_ids must be a list of at most {MAX_CONTACTS} ids, or null")
        contact_ids = {_id(c, "contact_ids[]") for c in contacts}
    return Watch(agent_id=agent_id, view=view, conversation_id=conversation_id,
                 contact_ids=contact_ids)
