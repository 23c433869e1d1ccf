"""Routing, not broadcast (issue 7), on a real server: an agent socket that sent a watch
frame receives the events of its view, its open conversation and its assignments, and
hears when a conversation leaves its view; committed events reach every socket in seq
order, a lasting gap read from the log once per process, a hole that never fills skipped;
a resume by `since` with a view replays what the view would have received live."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from typing import Any
from urllib.parse import quote

import pytest
import websockets
from sqlalchemy import event as sa_event
from sqlalchemy import text

from inbox import pipeline, store
from inbox.agents import create_agent
from inbox.events import EventOut
from tests.conftest import make_settings
from tests.fakes.twilio_recorder import TEST_ACCOUNT_SID, TEST_AUTH_TOKEN
from tests.inbox.fast_db import database_url, sqlite_template  # noqa: F401
from tests.inbox.test_pipeline import sms as inbound
from tests.support.server import LiveServer, live_server

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(90)]

@asynccontextmanager
async def agent_sockets(url: str, n: int) -> AsyncIterator[list[Any]]:
    """`n` agent sockets on `url`, each past its hello; closed afterwards."""
    sockets = [await websockets.connect(url) for _ in range(n)]
    try:
        for ws in sockets:
            await frames_until(ws, lambda f: f["type"] == "hello")
        yield sockets
    finally:
        for ws in sockets:
            await ws.close()


@asynccontextmanager
async def watchers(server: LiveServer, *views: dict[str, Any]) -> AsyncIterator[list[Any]]:
    """One new agent per view, its socket past hello and watching that view; closed
    afterwards."""
    sockets = []
    try:
        for n, view in enumerate(views):
            _agent, token = await create_agent(server.rt, email=f"watcher{n}@test.example",
                                               name=f"Watcher {n}", role="agent")
            ws = await websockets.connect(f"{server.ws_url}/ws/agent?token={token}")
            sockets.append(ws)
            await frames_until(ws, lambda f: f["type"] == "hello")
            await watch(ws, view)
        yield sockets
    finally:
        for ws in sockets:
            await ws.close()


async def frames_until(ws: Any, done: Any, timeout: float = 10.0) -> list[dict[str, Any]]:
    """Frames (heartbeats left out) up to and including the first for which `done` is true."""
    out: list[dict[str, Any]] = []
    async with asyncio.timeout(timeout):
        while True:
            frame: dict[str, Any] = json.loads(await ws.recv())
            if frame.get("type") == "ping":
                continue
            out.append(frame)
            if done(frame):
                return out


async def quiet(ws: Any, seconds: float = 0.4) -> list[dict[str, Any]]:
    """Whatever arrives (heartbeats left out) within `seconds`."""
    out: list[dict[str, Any]] = []
    try:
        async with asyncio.timeout(seconds):
            while True:
                frame = json.loads(await ws.recv())
                if frame.get("type") != "ping":
                    out.append(frame)
    except TimeoutError:
        return out


async def watch(ws: Any, view: dict[str, Any], conversation_id: int | None = None) -> None:
    await ws.send(json.dumps({"type": "watch", "view": view, "conversation_id": conversation_id}))
    await frames_until(ws, lambda f: f["type"] == "watching")


def seqs(frames: list[dict[str, Any]]) -> list[int]:
    return [f["seq"] for f in frames
            if isinstance(f.get("seq"), int) and f["type"] not in ("hello", "caught_up")]


@contextmanager
def event_log_reads(server: LiveServer) -> Iterator[list[str]]:
    """Every SQL statement reading the event table while the block runs."""
    seen: list[str] = []

    def note(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        if "FROM event" in statement:
            seen.append(statement)

    engine = server.rt.engine.sync_engine
    sa_event.listen(engine, "before_cursor_execute", note)
    try:
        yield seen
    finally:
        sa_event.remove(engine, "before_cursor_execute", note)


async def commit_unpublished(server: LiveServer, conversation_id: int, n: int = 1) -> list[EventOut]:
    """Events committed to the log but not published (yet): a slow or dead publisher."""
    out = []
    async with server.rt.sessions() as session, session.begin():
        for i in range(n):
            out.append(await store.add_event(session, type="conversation.updated",
                                             conversation_id=conversation_id,
                                             payload={"n": i}))
    return out


# ---------------------------------------------------------------------------- views


async def test_agent_watching_mine_skips_unrelated_messages_but_gets_the_assignment(
    server: LiveServer,
) -> None:
    agent, token = await create_agent(server.rt, email="mine@test.example", name="Mine", role="agent")
    async with websockets.connect(f"{server.ws_url}/ws/agent?token={token}") as ws:
        await frames_until(ws, lambda f: f["type"] == "hello")
        await watch(ws, {"assignee": "me"})
        unrelated = await pipeline.ingest(server.rt, inbound("Where is my order?"))
        other = await pipeline.ingest(server.rt, inbound("Hi", sender="+15550107777"))
        await pipeline.assign(server.rt, conversation_id=other.conversation_id, agent_id=agent.id)
        got = await frames_until(ws, lambda f: f["type"] == "conversation.updated")
        assert {f["conversation_id"] for f in got} == {other.conversation_id}
        assert got[-1]["conversation"]["assignee_id"] == agent.id
        assert got[-1]["previous"]["assignee_id"] is None
        # Now it is theirs: the customer's next message reaches them; the other's does not.
        await pipeline.ingest(server.rt, inbound("still there?"))
        await pipeline.ingest(server.rt, inbound("thanks", sender="+15550107777"))
        [created] = await frames_until(ws, lambda f: f["type"] == "message.created")
        assert created["message"]["text"] == "thanks"
        assert unrelated.conversation_id not in {f.get("conversation_id") for f in await quiet(ws)}


async def test_assignment_reaches_the_assignee_whatever_view_they_watch(server: LiveServer) -> None:
    agent, token = await create_agent(server.rt, email="pend@test.example", name="P", role="agent")
    async with websockets.connect(f"{server.ws_url}/ws/agent?token={token}") as ws:
        await frames_until(ws, lambda f: f["type"] == "hello")
        await watch(ws, {"status": "pending"})
        result = await pipeline.ingest(server.rt, inbound("help"))
        await pipeline.assign(server.rt, conversation_id=result.conversation_id, agent_id=agent.id)
        got = await frames_until(ws, lambda f: f["type"] == "conversation.updated")
        assert got[0]["type"] == "message.created" and got[0]["message"]["author"] == "system"
        assert got[-1]["conversation"]["assignee_id"] == agent.id


async def test_conversation_leaving_the_view_is_still_signalled_then_no_longer_sent(
    server: LiveServer, agent_token: str
) -> None:
    other, _token = await create_agent(server.rt, email="b@test.example", name="B", role="agent")
    async with websockets.connect(f"{server.ws_url}/ws/agent?token={agent_token}") as ws:
        await frames_until(ws, lambda f: f["type"] == "hello")
        await watch(ws, {"status": "open"})
        result = await pipeline.ingest(server.rt, inbound("open one"))
        cid = result.conversation_id
        first = await frames_until(ws, lambda f: f["type"] == "message.created")
        assert [f["type"] for f in first] == ["conversation.created", "message.created"]
        await pipeline.set_status(server.rt, conversation_id=cid, status="resolved")
        left = await frames_until(ws, lambda f: f["type"] == "conversation.updated")
        assert left[-1]["conversation"]["status"] == "resolved"
        assert left[-1]["previous"]["status"] == "open"
        # Out of the view: later changes to it are not sent.
        await pipeline.assign(server.rt, conversation_id=cid, agent_id=other.id)
        marker = await pipeline.ingest(server.rt, inbound("another", sender="+15550108888"))
        after = await frames_until(ws, lambda f: f["type"] == "message.created")
        assert {f["conversation_id"] for f in after} == {marker.conversation_id}


async def test_open_conversation_events_and_typing_reach_a_watcher_outside_its_view(
    server: LiveServer, agent_token: str, admin_token: str
) -> None:
    result = await pipeline.ingest(server.rt, inbound("typing test"))
    cid = result.conversation_id
    url = f"{server.ws_url}/ws/agent?token="
    async with websockets.connect(url + agent_token) as ws, websockets.connect(url + admin_token) as peer:
        await frames_until(ws, lambda f: f["type"] == "hello")
        await frames_until(peer, lambda f: f["type"] == "hello")
        await watch(ws, {"status": "snoozed"}, conversation_id=cid)
        await peer.send(json.dumps({"type": "typing", "conversation_id": cid}))
        await peer.send(json.dumps({"type": "typing", "conversation_id": cid + 1000}))
        [typing] = await frames_until(ws, lambda f: f["type"] == "typing")
        assert typing["conversation_id"] == cid
        await pipeline.ingest(server.rt, inbound("in the open thread"))
        [created] = await frames_until(ws, lambda f: f["type"] == "message.created")
        assert created["conversation_id"] == cid
        assert [f for f in await quiet(ws) if f["type"] == "typing"] == []


async def test_a_socket_without_watch_still_receives_everything(
    server: LiveServer, agent_token: str
) -> None:
    async with websockets.connect(f"{server.ws_url}/ws/agent?token={agent_token}") as ws:
        await frames_until(ws, lambda f: f["type"] == "hello")
        a = await pipeline.ingest(server.rt, inbound("one"))
        b = await pipeline.ingest(server.rt, inbound("two", sender="+15550109999"))
        got = await frames_until(ws, lambda f: f.get("conversation_id") == b.conversation_id
                                 and f["type"] == "message.created")
    assert {f["conversation_id"] for f in got} == {a.conversation_id, b.conversation_id}


async def test_a_bad_watch_frame_is_answered_with_an_error_and_changes_nothing(
    server: LiveServer, agent_token: str
) -> None:
    async with websockets.connect(f"{server.ws_url}/ws/agent?token={agent_token}") as ws:
        await frames_until(ws, lambda f: f["type"] == "hello")
        await ws.send(json.dumps({"type": "watch", "view": {"status": "archived"}}))
        [error] = await frames_until(ws, lambda f: f["type"] == "error")
        assert error["error"] == "bad_watch" and "status" in error["detail"]
        await pipeline.ingest(server.rt, inbound("still everything"))
        await frames_until(ws, lambda f: f["type"] == "message.created")


# ---------------------------------------------------------------------------- order


async def test_out_of_order_publish_reaches_every_socket_in_order_without_reading_the_log(
    server: LiveServer, agent_token: str
) -> None:
    cid = (await pipeline.ingest(server.rt, inbound("order"))).conversation_id
    url = f"{server.ws_url}/ws/agent?token={agent_token}"
    async with agent_sockets(url, 5) as sockets:
        first, second, third = await commit_unpublished(server, cid, 3)
        with event_log_reads(server) as reads:
            server.rt.bus.publish(third)
            server.rt.bus.publish(second)
            await asyncio.sleep(0.03)  # a concurrent step publishing a little later
            server.rt.bus.publish(first)
            for ws in sockets:
                got = await frames_until(ws, lambda f: f.get("seq") == third.seq)
                assert seqs(got) == [first.seq, second.seq, third.seq]
        assert reads == []
        assert server.rt.hub.sequencer.fetches == 0


async def test_an_event_never_published_is_read_from_the_log_once_for_every_socket(
    server: LiveServer, agent_token: str
) -> None:
    cid = (await pipeline.ingest(server.rt, inbound("lost publisher"))).conversation_id
    url = f"{server.ws_url}/ws/agent?token={agent_token}"
    async with agent_sockets(url, 5) as sockets:
        # Its publisher died between commit and publish: only the next one is published.
        orphan, = await commit_unpublished(server, cid)
        with event_log_reads(server) as reads:
            result = await pipeline.ingest(server.rt, inbound("next"))
            last = result.events[-1].seq
            for ws in sockets:
                got = await frames_until(ws, lambda f: f.get("seq") == last)
                assert seqs(got) == list(range(orphan.seq or 0, (last or 0) + 1))
        # One read of the log for the process, not one per socket.
        assert len(reads) == 1
        assert server.rt.hub.sequencer.recovered == 1


async def _leave_a_hole(server: LiveServer, cid: int) -> int:
    """A seq no committed event will ever have, as a rolled-back transaction leaves."""
    if server.rt.settings.is_sqlite:
        # SQLite reuses a rolled-back rowid: make the hole by hand, as PostgreSQL would.
        async with server.rt.sessions() as session, session.begin():
            hole = await store.last_seq(session) + 1
            await session.exec(text(  # type: ignore[call-overload]
                "INSERT INTO event (seq, type, conversation_id, payload, created_at) "
                "VALUES (:seq, 'conversation.updated', :cid, '{}', CURRENT_TIMESTAMP)")
                .bindparams(seq=hole + 1, cid=cid))
        return hole
    async with server.rt.sessions() as session:
        await session.begin()
        event = await store.add_event(session, type="conversation.updated",
                                      conversation_id=cid, payload={})
        await session.rollback()
    return event.seq or 0


async def test_a_hole_that_never_fills_is_skipped_after_one_log_read(
    server: LiveServer, agent_token: str
) -> None:
    cid = (await pipeline.ingest(server.rt, inbound("hole"))).conversation_id
    async with websockets.connect(f"{server.ws_url}/ws/agent?token={agent_token}") as ws:
        await frames_until(ws, lambda f: f["type"] == "hello")
        hole = await _leave_a_hole(server, cid)
        async with server.rt.sessions() as session:
            after_hole = [e for e in await store.events_after(session, seq=hole)]
        if after_hole:  # SQLite: the hand-made row past the hole, published as its step would
            server.rt.bus.publish(after_hole[0])
        result = await pipeline.ingest(server.rt, inbound("after the hole"))
        last = result.events[-1].seq or 0
        got = await frames_until(ws, lambda f: f.get("seq") == last, timeout=5)
        assert hole not in seqs(got)
        assert seqs(got) == [s for s in range(hole + 1, last + 1)]
        assert server.rt.hub.sequencer.skipped == 1
        assert server.rt.hub.sequencer.fetches == 1
        # Past the hole, events flow again without waiting on it: no further log read.
        more = await pipeline.ingest(server.rt, inbound("flowing"))
        await frames_until(ws, lambda f: f.get("seq") == more.events[-1].seq)
        assert server.rt.hub.sequencer.fetches == 1
        assert server.rt.hub.sequencer.skipped == 1


# ---------------------------------------------------------------------------- resume


async def test_resume_with_since_and_a_view_replays_what_the_view_would_have_received(
    server: LiveServer,
) -> None:
    agent, token = await create_agent(server.rt, email="resume@test.example", name="R", role="agent")
    theirs = (await pipeline.ingest(server.rt, inbound("mine soon"))).conversation_id
    unrelated = (await pipeline.ingest(server.rt, inbound("not mine", sender="+15550106666"))).conversation_id
    async with server.rt.sessions() as session:
        since = await store.last_seq(session)
    view = quote(json.dumps({"view": {"assignee": "me"}}))
    url = f"{server.ws_url}/ws/agent?token={token}&watch={view}"

    async def offline_work() -> int:
        await pipeline.ingest(server.rt, inbound("unrelated 1", sender="+15550106666"))
        await pipeline.assign(server.rt, conversation_id=theirs, agent_id=agent.id)
        await pipeline.ingest(server.rt, inbound("for them"))
        await pipeline.ingest(server.rt, inbound("unrelated 2", sender="+15550106666"))
        await pipeline.assign(server.rt, conversation_id=theirs, agent_id=None)  # leaves the view
        await pipeline.ingest(server.rt, inbound("not theirs any more"))
        return (await pipeline.ingest(server.rt, inbound("end", sender="+15550106666"))).events[-1].seq or 0

    # What a live socket with that view receives...
    async with websockets.connect(url) as live:
        hello = await frames_until(live, lambda f: f["type"] == "hello")
        assert hello[0]["watching"]["view"]["assignee"] == agent.id
        end = await offline_work()
        live_frames = await quiet(live, 0.6)
    # ... is what a socket resuming from before it replays.
    async with websockets.connect(f"{url}&since={since}") as resumed:
        replayed = await quiet(resumed, 0.6)
    assert seqs(replayed) == seqs(live_frames)
    assert seqs(replayed), "the view's events were replayed"
    assert {f["conversation_id"] for f in replayed if f["type"] not in ("hello", "caught_up")} == {theirs}
    # The replay says how far it went: resume from there, whatever was sent.
    assert replayed[-1] == {"type": "caught_up", "seq": end}
    assert unrelated not in {f.get("conversation_id") for f in replayed}
    assert max(seqs(replayed)) < end
    # The unassignment (leaving the view) is in both.
    assert [f["conversation"]["assignee_id"] for f in replayed
            if f["type"] == "conversation.updated"] == [agent.id, None]


async def test_watching_many_idle_agents_costs_an_event_only_its_own_subscribers(
    server: LiveServer,
) -> None:
    # 200 idle "mine" watchers and one "all open" watcher: a new message is offered to
    # the one, not to the 200 (routing by index, not a predicate per socket).
    agents = [await create_agent(server.rt, email=f"idle{i}@test.example", name=f"I{i}",
                                 role="agent") for i in range(3)]
    url = f"{server.ws_url}/ws/agent?token="
    idle = [await websockets.connect(url + agents[i % 3][1]) for i in range(200)]
    try:
        for ws in idle:
            await frames_until(ws, lambda f: f["type"] == "hello")
            await watch(ws, {"assignee": "me"})
        async with websockets.connect(url + agents[0][1]) as active:
            await frames_until(active, lambda f: f["type"] == "hello")
            await watch(active, {"status": "open"})
            hub = server.rt.hub
            await pipeline.ingest(server.rt, inbound("warm up"))
            await frames_until(active, lambda f: f["type"] == "message.created")
            before = hub.considered
            await pipeline.ingest(server.rt, inbound("routed"))
            await frames_until(active, lambda f: f["type"] == "message.created")
            assert hub.considered - before == 1
        for ws in idle[:20]:
            assert seqs(await quiet(ws, 0.01)) == []
    finally:
        for ws in idle:
            await ws.close()


async def test_after_a_restart_stored_states_keep_old_conversations_routed_by_view(
    server: LiveServer,
) -> None:
    agent, token = await create_agent(server.rt, email="warm@test.example", name="W", role="agent")
    old = (await pipeline.ingest(server.rt, inbound("from before the restart"))).conversation_id
    url = f"{server.ws_url}/ws/agent?token={token}"
    idle = [await websockets.connect(url) for _ in range(20)]
    try:
        for ws in idle:
            await frames_until(ws, lambda f: f["type"] == "hello")
            await watch(ws, {"assignee": "me"})
        hub = server.rt.hub
        hub.states.clear()  # what a restarted worker knows of earlier conversations
        await pipeline.ingest(server.rt, inbound("unknown before"))
        assert [f["conversation_id"] for f in await quiet(idle[0]) if f.get("seq")] == [old]
        hub.states.clear()
        await hub.reload_states()
        before = hub.considered
        await pipeline.ingest(server.rt, inbound("known from the table"))
        await asyncio.sleep(0.3)
        assert hub.considered - before == 0
        assert seqs(await quiet(idle[0])) == []
        # Assigning it to them still reaches them.
        await pipeline.assign(server.rt, conversation_id=old, agent_id=agent.id)
        got = await frames_until(idle[0], lambda f: f["type"] == "conversation.updated")
        assert got[-1]["conversation"]["assignee_id"] == agent.id
    finally:
        for ws in idle:
            await ws.close()


async def test_a_reply_that_moves_a_conversation_reaches_its_old_view_on_a_worker_that_never_saw_it(
    database_url: str, twilio_recorder: Any,  # noqa: F811 (the fixture)
) -> None:
    # An agent's reply hands a bot-handled, unassigned conversation to that agent. The
    # event says where it was before (`previous`), so a worker whose router does not know
    # the conversation (restarted, resynced) still tells the socket showing "handled by
    # the bot" that it left, and does not bother a socket whose view it never was in.
    settings = make_settings(database_url, twilio_account_sid=TEST_ACCOUNT_SID,
                             twilio_auth_token=TEST_AUTH_TOKEN,
                             twilio_api_base=twilio_recorder.base_url,
                             twilio_default_from="+15550009999")
    async with live_server(settings) as server:
        replier, _token = await create_agent(server.rt, email="rep@test.example", name="Rep",
                                             role="agent")
        cid = (await pipeline.ingest(server.rt, inbound("a question for the bot"))).conversation_id
        async with watchers(server, {"handled_by": "bot"}, {"status": "pending"}) as (bots, pending):
            server.rt.hub.states.clear()  # this worker knows nothing of the conversation
            await pipeline.reply(server.rt, conversation_id=cid, text="A person here",
                                 agent_id=replier.id)
            got = await frames_until(bots, lambda f: f["type"] == "conversation.updated")
            assert [f["type"] for f in got] == ["message.created", "conversation.updated"]
            assert {f["conversation_id"] for f in got} == {cid}
            moved = got[-1]
            assert moved["previous"] == {"status": "open", "assignee_id": None,
                                         "channel": "sms", "handled_by": "bot"}
            assert (moved["conversation"]["handled_by"], moved["conversation"]["assignee_id"]) \
                == ("human", replier.id)
            assert seqs(await quiet(pending)) == []
            # Now out of the view (and known to be): the next reply is not sent to it.
            await pipeline.reply(server.rt, conversation_id=cid, text="Anything else?",
                                 agent_id=replier.id)
            marker = await pipeline.ingest(server.rt, inbound("new one", sender="+15550104444"))
            after = await frames_until(bots, lambda f: f["type"] == "message.created")
            assert {f["conversation_id"] for f in after} == {marker.conversation_id}


async def test_quiet_agent_and_visitor_sockets_get_heartbeats_and_busy_ones_their_events(
    database_url: str,  # noqa: F811 (the fixture)
) -> None:
    async with live_server(make_settings(database_url, heartbeat_seconds=0.2)) as server:
        _agent, token = await create_agent(server.rt, email="hb@test.example", name="HB", role="agent")
        async with websockets.connect(f"{server.ws_url}/ws/agent?token={token}") as agent, \
                websockets.connect(f"{server.ws_url}/ws/chat") as visitor:
            await frames_until(agent, lambda f: f["type"] == "hello")
            assert json.loads(await visitor.recv())["type"] == "welcome"
            for ws in (agent, visitor):
                async with asyncio.timeout(5):
                    assert json.loads(await ws.recv()) == {"type": "ping"}
            await pipeline.ingest(server.rt, inbound("between heartbeats"))
            got = await frames_until(agent, lambda f: f["type"] == "message.created")
            assert got[-1]["message"]["text"] == "between heartbeats"
