"""The agent event stream `/ws/agent` on a real server: fan-out to every agent, resume
by `?since=` with no gap and no duplicate, and a slow agent resynced without slowing
anyone else."""

from __future__ import annotations

import asyncio
import json
import os
import socket
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import urlsplit

import pytest
import websockets
from websockets.exceptions import ConnectionClosed, InvalidStatus

from inbox import pipeline, store
from inbox.agents import create_agent
from inbox.types import Inbound
from tests.conftest import make_settings
from tests.inbox.fast_db import admin_token, agent_token, database_url, sqlite_template  # noqa: F401
from tests.support.server import LiveServer, live_server

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(90)]

_counter = 0


def inbound(text: str, *, sender: str = "+15550102030") -> Inbound:
    global _counter
    _counter += 1
    return Inbound(channel="sms", provider="twilio", provider_message_id=f"SMstream{_counter}",
                   sender=sender, sender_kind="phone", recipient="+15550009999", text=text)


async def next_frame(ws: Any, kind: str | None = None, timeout: float = 10.0) -> dict[str, Any]:
    """The next frame (of `kind`, skipping heartbeats and other kinds) within `timeout`."""
    async with asyncio.timeout(timeout):
        while True:
            frame: dict[str, Any] = json.loads(await ws.recv())
            if frame.get("type") == "ping":
                continue
            if kind is None or frame.get("type") == kind:
                return frame


async def events(ws: Any, count: int, timeout: float = 10.0) -> list[dict[str, Any]]:
    """The next `count` seq-carrying events, in arrival order, within `timeout`."""
    out: list[dict[str, Any]] = []
    try:
        async with asyncio.timeout(timeout):
            while len(out) < count:
                frame = json.loads(await ws.recv())
                if frame.get("seq") is not None and frame["type"] != "hello":
                    out.append(frame)
    except TimeoutError:
        raise AssertionError(f"expected {count} events, got {len(out)}: seqs "
                             f"{[e['seq'] for e in out]}") from None
    return out


async def test_customer_message_reaches_every_connected_agent(
    server: LiveServer, agent_token: str, admin_token: str
) -> None:
    url = f"{server.ws_url}/ws/agent"
    async with websockets.connect(f"{url}?token={agent_token}") as first, \
            websockets.connect(url, additional_headers=server.auth(admin_token)) as second:
        hello = [await next_frame(ws, "hello") for ws in (first, second)]
        assert {h["agent"]["role"] for h in hello} == {"agent", "admin"}
        await pipeline.ingest(server.rt, inbound("Is my parcel lost?"))
        for ws in (first, second):
            created = await next_frame(ws, "message.created")
            assert created["message"]["text"] == "Is my parcel lost?"
            assert created["message"]["author"] == "customer"
            assert created["conversation"]["channel"] == "sms"


async def test_reconnect_with_since_replays_exactly_the_missed_events_then_streams_live(
    server: LiveServer, agent_token: str
) -> None:
    url = f"{server.ws_url}/ws/agent?token={agent_token}"
    async with websockets.connect(url) as ws:
        await next_frame(ws, "hello")
        await pipeline.ingest(server.rt, inbound("first"))
        seen = await events(ws, 2)  # conversation.created, message.created
    last = seen[-1]["seq"]

    # Offline: 50 messages in the existing conversation, one event each.
    for i in range(50):
        await pipeline.ingest(server.rt, inbound(f"missed {i}"))

    async with websockets.connect(f"{url}&since={last}") as ws:
        hello = await next_frame(ws, "hello")
        assert hello["seq"] == last + 50
        replayed = await events(ws, 50)
        assert [e["seq"] for e in replayed] == list(range(last + 1, last + 51))
        assert [e["message"]["text"] for e in replayed] == [f"missed {i}" for i in range(50)]
        # Then live events continue, without repeating any replayed one.
        await pipeline.ingest(server.rt, inbound("live again"))
        [live] = await events(ws, 1)
        assert live["seq"] == last + 51 and live["message"]["text"] == "live again"


async def test_events_committed_during_replay_are_neither_lost_nor_repeated(
    server: LiveServer, agent_token: str
) -> None:
    url = f"{server.ws_url}/ws/agent?token={agent_token}"
    first = await pipeline.ingest(server.rt, inbound("before"))
    start = first.events[-1].seq or 0
    for i in range(30):
        await pipeline.ingest(server.rt, inbound(f"backlog {i}"))

    async def keep_ingesting() -> None:
        for i in range(30):
            await pipeline.ingest(server.rt, inbound(f"during {i}"))

    async with websockets.connect(f"{url}&since={start}") as ws:
        writer = asyncio.create_task(keep_ingesting())
        received = await events(ws, 60)
        await writer
    assert [e["seq"] for e in received] == list(range(start + 1, start + 61))


async def test_agent_socket_without_credentials_is_refused_at_the_handshake(server: LiveServer) -> None:
    with pytest.raises(InvalidStatus) as refused:
        async with websockets.connect(f"{server.ws_url}/ws/agent"):
            pass
    assert refused.value.response.status_code == 403


async def test_agent_socket_with_a_wrong_token_is_refused(server: LiveServer) -> None:
    with pytest.raises(InvalidStatus):
        async with websockets.connect(f"{server.ws_url}/ws/agent?token=inbx_forged"):
            pass


async def test_faq_editor_may_not_open_the_agent_stream(server: LiveServer) -> None:
    _agent, token = await create_agent(server.rt, email="faq@test.example", name="Faq",
                                       role="faq_editor")
    with pytest.raises(InvalidStatus):
        async with websockets.connect(f"{server.ws_url}/ws/agent?token={token}"):
            pass


async def test_since_that_is_not_a_number_is_refused(server: LiveServer, agent_token: str) -> None:
    with pytest.raises(InvalidStatus):
        async with websockets.connect(f"{server.ws_url}/ws/agent?token={agent_token}&since=abc"):
            pass


# ---------------------------------------------------------------------------- slow agents


@pytest.fixture
async def small_queue_server(database_url: str) -> AsyncIterator[LiveServer]:
    """A server whose hub keeps at most 16 undelivered events per subscriber."""
    async with live_server(make_settings(database_url, hub_queue_size=16)) as srv:
        yield srv


def _tight_socket(base_url: str) -> socket.socket:
    """A connected client socket with a small receive buffer (no kernel autotuning), so a
    client that stops reading backs up into the server quickly."""
    parts = urlsplit(base_url)
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 16_384)
    sock.connect((parts.hostname, parts.port))
    sock.setblocking(False)
    return sock


async def test_slow_agent_is_resynced_and_closed_while_others_receive_everything(
    small_queue_server: LiveServer,
) -> None:
    server = small_queue_server
    _agent, token = await create_agent(server.rt, email="a@test.example", name="A", role="agent")
    url = f"{server.ws_url}/ws/agent?token={token}"
    count = 120
    texts = [f"{i}:" + os.urandom(50_000).hex() for i in range(count)]  # ~100 KB, incompressible

    async with websockets.connect(url, compression=None, max_size=None) as normal, \
            websockets.connect(url, compression=None, max_size=None, max_queue=1,
                               sock=_tight_socket(server.base_url)) as slow:
        await next_frame(normal, "hello")
        await next_frame(slow, "hello")
        assert server.rt.hub.subscriber_count == 2
        received: list[dict[str, Any]] = []

        async def read_normal() -> None:
            while len(received) < count + 1:  # + conversation.created
                frame = await next_frame(normal, timeout=30)
                assert frame["type"] != "resync", "the agent that keeps up was resynced"
                received.append(frame)

        reader = asyncio.create_task(read_normal())
        # `slow` never reads while we ingest. Every ingest must complete regardless.
        for text in texts:
            await pipeline.ingest(server.rt, inbound(text))
        await reader

        assert [f["message"]["text"] for f in received if f["type"] == "message.created"] == texts
        # The slow agent's subscription was dropped; the normal one is still there.
        assert server.rt.hub.subscriber_count == 1

        # When the slow agent finally reads, it finds the resync notice and the close.
        frames: list[dict[str, Any]] = []
        with pytest.raises(ConnectionClosed) as closed:
            while True:
                frames.append(json.loads(await asyncio.wait_for(slow.recv(), 30)))
        assert frames[-1]["type"] == "resync"
        assert closed.value.rcvd is not None and closed.value.rcvd.code == 4000
        delivered = [f for f in frames if f["type"] == "message.created"]
        assert len(delivered) < count
        # The resync frame names the last seq it saw, so it can reconnect with ?since=.
        assert frames[-1]["seq"] == max(f["seq"] for f in frames[:-1] if f.get("seq"))


async def test_concurrent_ingests_all_reach_a_live_agent(server: LiveServer, agent_token: str) -> None:
    # Concurrent transactions may commit (and publish) in another order than their seqs
    # were drawn; the stream must still deliver every event exactly once.
    async with websockets.connect(f"{server.ws_url}/ws/agent?token={agent_token}") as ws:
        await next_frame(ws, "hello")
        for round in range(4):
            await asyncio.gather(*(
                pipeline.ingest(server.rt, inbound(f"r{round} c{i}", sender=f"+1555010{i:04d}"))
                for i in range(25)))
        async with server.rt.sessions() as session:
            stored = [e.seq for e in await store.events_after(session, seq=0)]
        received = await events(ws, len(stored))
    assert sorted(e["seq"] for e in received) == stored


async def test_since_beyond_the_log_still_streams_new_events(server: LiveServer, agent_token: str) -> None:
    # A client that kept a seq from before the database was reset (or a garbled one).
    async with websockets.connect(f"{server.ws_url}/ws/agent?token={agent_token}&since=100000") as ws:
        hello = await next_frame(ws, "hello")
        assert hello["seq"] == 0
        await pipeline.ingest(server.rt, inbound("after a reset"))
        received = await events(ws, 2)
    assert [e["type"] for e in received] == ["conversation.created", "message.created"]
    assert [e["seq"] for e in received] == [1, 2]


async def _session_cookie(server: LiveServer) -> str:
    """Log in through the form; the session cookie as a Cookie header value."""
    import re

    import httpx

    await create_agent(server.rt, email="web@test.example", name="Web", role="agent", password="web-password")
    async with httpx.AsyncClient(base_url=server.base_url, timeout=10) as client:
        page = await client.get("/login")
        csrf = re.search(r'name="csrf" value="([^"]+)"', page.text)
        assert csrf
        resp = await client.post("/login", data={"csrf": csrf.group(1), "email": "web@test.example",
                                                 "password": "web-password"})
        assert resp.status_code == 303
        return f"inbox_session={client.cookies['inbox_session']}"


async def test_session_socket_from_another_site_is_refused(server: LiveServer) -> None:
    cookie = await _session_cookie(server)
    url = f"{server.ws_url}/ws/agent"
    async with websockets.connect(url, additional_headers={"Cookie": cookie},
                                  origin=server.base_url) as ws:  # type: ignore[arg-type]
        assert (await next_frame(ws, "hello"))["agent"]["name"] == "Web"
    # Cross-site WebSocket hijacking: a page elsewhere riding the agent's cookie.
    with pytest.raises(InvalidStatus):
        async with websockets.connect(url, additional_headers={"Cookie": cookie},
                                      origin="https://evil.example"):  # type: ignore[arg-type]
            pass
