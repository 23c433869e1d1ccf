"""Websockets: `/ws/agent` (event stream with resume by seq) and `/ws/chat` (visitors).

Agents: subscribe first, then replay stored events after `since`, then stream live
events, skipping any seq already sent, so the seam has no gap and no duplicate. An agent
may send a watch frame (or `?watch=`) naming its list view and open conversation; from
then on it gets only the events those concern (`inbox.routing`), replay included.
Visitors: a signed token resumes their conversation; every message of it (their own
included) is pushed to them. Both get jittered heartbeats; a subscriber that falls
behind gets `{"type": "resync"}` and is closed (it reconnects with `since`).
"""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any

from sqlalchemy import func, select
from starlette.routing import WebSocketRoute
from starlette.websockets import WebSocket, WebSocketDisconnect

from inbox import pipeline, store
from inbox.errors import InboxError
from inbox.events import EventOut
from inbox.hub import Resync, conversation_topic, customer_topic
from inbox.models import Conversation, Event
from inbox.route_states import state_reader
from inbox.routing import BadWatch, StateTracker, ViewState, Watch, parse_watch
from inbox.runtime import Runtime
from inbox.sequencer import log_reader
from web.auth import CONVERSATION_ROLES, require
from web.ratelimit import TokenBucket

log = logging.getLogger(__name__)

REPLAY_PAGE = 500
MAX_FRAME = 64_000  # bytes in one client frame
CLOSE_RESYNC = 4000
CLOSE_UNAUTHORISED = 4401
# A visitor over the frame rate this many times in a row is cut off (a flood, not a person).
FLOOD_STRIKES = 20


def _rt(ws: WebSocket) -> Runtime:
    rt: Runtime = ws.app.state.runtime
    return rt


PING = '{"type":"ping"}'


async def _run_pair(*coros: Any) -> None:
    """Run coroutines until the first finishes; cancel the rest."""
    tasks = [asyncio.ensure_future(c) for c in coros]
    try:
        done, pending = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)
        for task in done:
            exc = task.exception()
            if exc is not None and not isinstance(exc, (WebSocketDisconnect, RuntimeError)):
                raise exc
    finally:
        for task in tasks:
            task.cancel()


async def _receive_json(ws: WebSocket) -> Any:
    """The next client frame as JSON; a `{"type": "error"}` reply for a bad one."""
    while True:
        message = await ws.receive()
        if message["type"] == "websocket.disconnect":
            raise WebSocketDisconnect(message.get("code", 1000))
        raw = message.get("text")
        if raw is None and message.get("bytes") is not None:
            raw = message["bytes"].decode("utf-8", "replace")
        if raw is None:
            continue
        if len(raw) > MAX_FRAME:
            await ws.close(code=1009)
            raise WebSocketDisconnect(1009)
        try:
            return json.loads(raw)
        except json.JSONDecodeError:
            await ws.send_json({"type": "error", "detail": "frames are JSON objects"})


# ---------------------------------------------------------------------------- agents


def _read_log(rt: Runtime) -> None:
    """Let the hub's sequencer fill lasting seq gaps from the event log (once per process),
    and its router know the stored state of recently active conversations (now and after
    every resync), so the first event of each is routed by its view rather than offered
    to every watcher.

    Wired here, lazily, because the hub is built before the runtime's sessions exist in
    `web.app`; a gap can only matter once a socket listens.
    """
    if not rt.hub.reads_log:
        rt.hub.use_log(log_reader(rt.sessions), states=state_reader(rt.sessions))


def _watch_from_query(ws: WebSocket, agent_id: int) -> Watch | None:
    raw = ws.query_params.get("watch")
    if raw in (None, ""):
        return None
    try:
        frame = json.loads(raw)
    except json.JSONDecodeError:
        raise BadWatch("watch must be a JSON object (the body of a watch frame)") from None
    return parse_watch(frame, agent_id=agent_id)


async def _seed_states(session: Any, tracker: StateTracker, events: list[EventOut],
                       since: int) -> None:
    """Teach `tracker` the state, as of `since`, of the conversations `events` are about
    and it does not know yet (one query), so a replay judges "left the view" as live did."""
    ids = {e.conversation_id for e in events
           if e.conversation_id is not None and e.conversation_id not in tracker}
    if not ids:
        return
    latest = (select(func.max(Event.seq)).where(
        Event.conversation_id.in_(ids), Event.seq <= since,  # type: ignore[union-attr, operator]
        Event.type.in_(("conversation.created", "conversation.updated", "message.created")))  # type: ignore[attr-defined]
        .group_by(Event.conversation_id))
    result = await session.exec(select(Event).where(Event.seq.in_(latest)))  # type: ignore[union-attr, call-overload]
    for row in result.scalars().all():
        snapshot = row.payload.get("conversation")
        if isinstance(snapshot, dict) and row.conversation_id is not None:
            tracker.remember(row.conversation_id, ViewState.of(snapshot), seq=row.seq or 0)


async def agent_socket(ws: WebSocket) -> None:
    rt = _rt(ws)
    _read_log(rt)
    try:
        caller = await require(ws, *CONVERSATION_ROLES, allow_query_token=True)
    except InboxError as exc:
        await ws.close(code=CLOSE_UNAUTHORISED, reason=exc.detail[:120])
        return
    since_raw = ws.query_params.get("since")
    try:
        since = int(since_raw) if since_raw not in (None, "") else None
    except ValueError:
        await ws.close(code=1008, reason="since must be a whole number")
        return
    try:
        watch = _watch_from_query(ws, caller.id)
    except BadWatch as exc:
        await ws.close(code=1008, reason=str(exc)[:120])
        return
    await ws.accept()
    # Subscribe before reading the log: whatever commits meanwhile is queued, not lost.
    sub = rt.hub.subscribe(lambda e: not (e.type == "typing" and e.payload.get("agent_id") == caller.id),
                           watch=watch, heartbeat=rt.settings.heartbeat_seconds)
    try:
        async with rt.sessions() as session:
            current = await store.last_seq(session)
        hello: dict[str, Any] = {"type": "hello", "seq": current, "agent": {
            "id": caller.id, "name": caller.name, "role": caller.role}}
        if watch is not None:
            hello["watching"] = watch.to_json()
        await ws.send_json(hello)
        # A since past the log (kept from before a database reset) would skip every live
        # event up to it, silently; the client gets what is new from here instead.
        last = current if since is None else min(since, current)
        if since is not None:
            # A watching socket replays what its watch would have received live.
            tracker, start = StateTracker(), last
            while True:
                async with rt.sessions() as session:
                    events = await store.events_after(session, seq=last, limit=REPLAY_PAGE)
                    if watch is not None:
                        await _seed_states(session, tracker, events, start)
                for event in events:
                    if watch is None:
                        await ws.send_text(event.wire())
                    else:
                        route = tracker.route(event)
                        if watch.accepts(event, route):
                            if route.contact_id is not None:
                                sub.show_contact(route.contact_id)
                            await ws.send_text(event.wire())
                    last = event.seq or last
                if len(events) < REPLAY_PAGE:
                    break
            if watch is not None:
                # A watcher may have been sent none of the replayed events: say how far
                # the replay went, so the client resumes from there and knows it caught up.
                await ws.send_json({"type": "caught_up", "seq": last})
        state = {"last": last}

        async def writer() -> None:
            # The hub's sequencer releases committed events in seq order, gaps filled
            # from the log once per process: a socket only skips what it already sent.
            # One wake-up sends everything queued meanwhile; each event's text was
            # encoded once for every socket (`EventOut.wire`).
            send = ws.send_text
            while True:
                try:
                    events = await sub.batch()
                except Resync:
                    await ws.send_json({"type": "resync", "seq": state["last"]})
                    await ws.close(code=CLOSE_RESYNC)
                    return
                if not events:
                    await send(PING)
                    continue
                last = state["last"]
                for event in events:
                    seq = event.seq
                    if seq is not None:
                        if seq <= last:
                            continue
                        state["last"] = last = seq
                    await send(event.wire())

        async def reader() -> None:
            while True:
                frame = await _receive_json(ws)
                kind = frame.get("type") if isinstance(frame, dict) else None
                if kind in ("typing", "viewing"):
                    cid = frame.get("conversation_id")
                    if isinstance(cid, int):
                        rt.bus.publish(EventOut(seq=None, type=kind, conversation_id=cid,
                                                payload={"who": "agent", "agent_id": caller.id,
                                                         "name": caller.name}))
                elif kind == "watch":
                    try:
                        changed = parse_watch(frame, agent_id=caller.id)
                    except BadWatch as exc:
                        await ws.send_json({"type": "error", "error": "bad_watch", "detail": str(exc)})
                        continue
                    sub.set_watch(changed)
                    # Through the queue, so it follows every event sent under the old watch:
                    # load the list after this and nothing falls between.
                    sub.offer(EventOut(seq=None, type="watching", conversation_id=None,
                                       payload=changed.to_json()))

        await _run_pair(writer(), reader())
    except WebSocketDisconnect:
        pass
    finally:
        sub.close()


# ---------------------------------------------------------------------------- visitors


def _visitor_event(visitor: str, state: dict[str, Any]) -> Any:
    def accepts(event: EventOut) -> bool:
        if event.type == "message.created":
            conv = event.payload.get("conversation") or {}
            msg = event.payload.get("message") or {}
            if conv.get("channel") == "webchat" and conv.get("customer_address") == visitor \
                    and not msg.get("private"):
                state["conversation_id"] = event.conversation_id
                if state.get("sub") is not None and event.conversation_id is not None:
                    state["sub"].follow(conversation_topic(event.conversation_id))
                return True
            return False
        if event.type == "typing":
            return (event.payload.get("who") == "agent"
                    and event.conversation_id == state.get("conversation_id"))
        return False
    return accepts


def _visitor_message(msg: dict[str, Any]) -> dict[str, Any]:
    """What a visitor may see of a message (no internal fields)."""
    return {k: msg.get(k) for k in ("id", "author", "text", "created_at", "attachments",
                                    "delivery_status")} | {
        "author_name": (msg.get("meta") or {}).get("author_name")}


async def _visitor_history(rt: Runtime, visitor: str) -> tuple[int | None, list[dict[str, Any]]]:
    from inbox.schemas import message_out

    async with rt.sessions() as session:
        identity = await store.find_identity(session, kind="webchat", value=visitor)
        if identity is None:
            return None, []
        from sqlalchemy import desc, select

        result = await session.exec(  # type: ignore[call-overload]
            select(Conversation).where(Conversation.identity_id == identity.id,
                                       Conversation.channel == "webchat")
            .order_by(desc(Conversation.id)).limit(1))
        conv = result.scalars().first()
        if conv is None:
            return None, []
        messages = await store.list_messages(session, conversation_id=conv.id or 0,
                                             include_private=False, limit=200)
        return conv.id, [_visitor_message(message_out(m)) for m in messages]


async def chat_socket(ws: WebSocket) -> None:
    rt = _rt(ws)
    _read_log(rt)
    connector = rt.connectors.get("webchat")
    if connector is None:
        await ws.close(code=1011)
        return
    token = ws.query_params.get("token")
    visitor = connector.visitor_from_token(token) if token else None  # type: ignore[attr-defined]
    if visitor is None:
        visitor, token = connector.new_visitor()  # type: ignore[attr-defined]
    await ws.accept()
    state: dict[str, Any] = {}
    sub = rt.hub.subscribe(_visitor_event(visitor, state),
                           topics={customer_topic("webchat", visitor)},
                           heartbeat=rt.settings.heartbeat_seconds)
    state["sub"] = sub
    connector.connected(visitor)  # type: ignore[attr-defined]
    try:
        conv_id, history = await _visitor_history(rt, visitor)
        state.setdefault("conversation_id", conv_id)
        if conv_id is not None:
            sub.follow(conversation_topic(conv_id))
        seen = {m["id"] for m in history}
        await ws.send_json({"type": "welcome", "token": token, "conversation_id": conv_id,
                            "messages": history})

        async def writer() -> None:
            while True:
                try:
                    events = await sub.batch()
                except Resync:
                    await ws.send_json({"type": "resync"})
                    await ws.close(code=CLOSE_RESYNC)
                    return
                if not events:
                    await ws.send_text(PING)
                for event in events:
                    if event.type == "typing":
                        await ws.send_json({"type": "typing", "who": "agent",
                                            "name": event.payload.get("name")})
                        continue
                    msg = event.payload["message"]
                    if msg["id"] in seen:
                        continue
                    seen.add(msg["id"])
                    await ws.send_json({"type": "message",
                                        "conversation_id": event.conversation_id,
                                        "message": _visitor_message(msg)})
                    connector.shown(msg["id"])  # type: ignore[attr-defined]

        bucket = TokenBucket(capacity=rt.settings.chat_burst, rate=rt.settings.chat_rate)
        strikes = 0

        async def reader() -> None:
            nonlocal strikes
            while True:
                frame = await _receive_json(ws)
                if not bucket.take():
                    strikes += 1
                    if strikes > FLOOD_STRIKES:
                        await ws.close(code=1008, reason="too many frames")
                        raise WebSocketDisconnect(1008)
                    await ws.send_json({"type": "error", "error": "rate_limited",
                                        "detail": "too many messages; slow down"})
                    continue
                strikes = 0
                try:
                    await _visitor_frame(rt, connector, visitor, frame, state)
                except InboxError as exc:
                    await ws.send_json({"type": "error", "error": exc.code, "detail": exc.detail})

        await _run_pair(writer(), reader())
    except WebSocketDisconnect:
        pass
    finally:
        sub.close()
        connector.disconnected(visitor)  # type: ignore[attr-defined]


async def _visitor_frame(rt: Runtime, connector: Any, visitor: str, frame: Any,
                         state: dict[str, Any]) -> None:
    inbound = connector.parse_frame(visitor, frame)
    if inbound is not None:
        result = await pipeline.ingest(rt, inbound)
        state["conversation_id"] = result.conversation_id
        state["sub"].follow(conversation_topic(result.conversation_id))
        return
    kind = frame.get("type")
    if kind == "typing" and state.get("conversation_id"):
        rt.bus.publish(EventOut(seq=None, type="typing", conversation_id=state["conversation_id"],
                                payload={"who": "customer"}))
    elif kind == "identify":
        email, name = frame.get("email"), frame.get("name")
        email = email if isinstance(email, str) and email.strip() else None
        await pipeline.identify_visitor(
            rt, visitor=visitor, email=email,
            name=name if isinstance(name, str) and name.strip() else None,
            verified=email is not None and connector.email_signed(email, frame.get("signature")))



routes = [
    WebSocketRoute("/ws/agent", agent_socket),
    WebSocketRoute("/ws/chat", chat_socket),
]
