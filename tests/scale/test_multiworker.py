"""Several workers on one PostgreSQL and one Redis: every agent sees every event, a
Redis restart loses nothing, and racing dispatchers send each message once.

Needs INBOX_TEST_DATABASE_URL and INBOX_TEST_REDIS_URL (CI sets both; under CI a
missing server fails instead of skipping). The Redis-restart test runs its own
throwaway redis-server so it never disturbs the shared one.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import websockets

from inbox import pipeline
from inbox.agents import create_agent
from inbox.types import Inbound
from tests.conftest import make_settings
from tests.fakes.twilio_recorder import (
    TEST_ACCOUNT_SID,
    TEST_AUTH_TOKEN,
    TwilioRecorder,
)
from tests.support.backends import fresh_database
from tests.support.required import missing
from tests.support.server import free_port, live_server

pytestmark = [pytest.mark.e2e, pytest.mark.postgres, pytest.mark.redis]


def _redis_url() -> str:
    url = os.environ.get("INBOX_TEST_REDIS_URL")
    if not url:
        missing("INBOX_TEST_REDIS_URL is not set")
    return url


@pytest.fixture
async def pg_url(tmp_path: Path) -> str:
    return await fresh_database("postgres", tmp_path)


@pytest.fixture
def private_redis(tmp_path: Path) -> Iterator[dict[str, Any]]:
    """A redis-server of our own on a free port, restartable by the test."""
    _redis_url()  # same skip/fail rule as the shared one
    binary = shutil.which("redis-server")
    if binary is None:
        pytest.fail("redis-server is not installed")
    port = free_port()
    args = [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
            "--dir", str(tmp_path)]
    state: dict[str, Any] = {"url": f"redis://127.0.0.1:{port}/0", "proc": None}

    def start() -> None:
        state["proc"] = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        for _ in range(100):
            try:
                import socket

                with socket.create_connection(("127.0.0.1", port), timeout=0.1):
                    return
            except OSError:
                import time

                time.sleep(0.05)
        raise RuntimeError("redis-server did not start")

    def stop() -> None:
        proc = state["proc"]
        if proc is not None:
            proc.kill()
            proc.wait()
            state["proc"] = None

    state["start"], state["stop"] = start, stop
    start()
    yield state
    stop()


async def _frames_until(ws: Any, predicate: Any, timeout: float = 10.0) -> list[dict[str, Any]]:
    frames: list[dict[str, Any]] = []
    async with asyncio.timeout(timeout):
        while True:
            frame = json.loads(await ws.recv())
            frames.append(frame)
            if predicate(frame, frames):
                return frames


def _sms(i: int) -> Inbound:
    return Inbound(channel="sms", provider="twilio", provider_message_id=f"SMmw{i}",
                   sender=f"+1555010{i % 100:04d}", sender_kind="phone", recipient="+15550009999",
                   text=f"message {i}")


async def test_agent_on_one_worker_sees_messages_ingested_on_another(pg_url: str) -> None:
    settings = make_settings(pg_url, redis_url=_redis_url())
    async with live_server(settings) as a, live_server(settings) as b:
        await asyncio.wait_for(a.rt.bus.connected.wait(), 5)  # type: ignore[attr-defined]
        await asyncio.wait_for(b.rt.bus.connected.wait(), 5)  # type: ignore[attr-defined]
        _agent, token = await create_agent(a.rt, email="a@x.example", name="A", role="agent")
        async with websockets.connect(f"{a.ws_url}/ws/agent?token={token}") as on_a, \
                websockets.connect(f"{b.ws_url}/ws/agent?token={token}") as on_b:
            await _frames_until(on_a, lambda f, _: f["type"] == "hello")
            await _frames_until(on_b, lambda f, _: f["type"] == "hello")
            for i in range(5):
                await pipeline.ingest(b.rt if i % 2 else a.rt, _sms(i))
            for ws in (on_a, on_b):
                frames = await _frames_until(
                    ws, lambda f, fs: sum(x["type"] == "message.created" for x in fs) == 5)
                texts = [f["message"]["text"] for f in frames if f["type"] == "message.created"]
                assert texts == [f"message {i}" for i in range(5)]
                seqs = [f["seq"] for f in frames if f.get("seq")]
                assert seqs == sorted(seqs) and len(seqs) == len(set(seqs))


async def test_redis_restart_loses_nothing_for_agents(pg_url: str, private_redis: dict[str, Any]) -> None:
    settings = make_settings(pg_url, redis_url=private_redis["url"])
    async with live_server(settings) as a, live_server(settings) as b:
        bus_a = a.rt.bus
        await asyncio.wait_for(bus_a.connected.wait(), 5)  # type: ignore[attr-defined]
        await asyncio.wait_for(b.rt.bus.connected.wait(), 5)  # type: ignore[attr-defined]
        _agent, token = await create_agent(a.rt, email="a@x.example", name="A", role="agent")
        seen: list[str] = []
        last_seq = 0
        ws = await websockets.connect(f"{a.ws_url}/ws/agent?token={token}")
        hello = (await _frames_until(ws, lambda f, _: f["type"] == "hello"))[-1]
        last_seq = hello["seq"]
        await pipeline.ingest(b.rt, _sms(1))
        for f in await _frames_until(ws, lambda f, _: f["type"] == "message.created"):
            last_seq = f.get("seq") or last_seq
            if f["type"] == "message.created":
                seen.append(f["message"]["text"])

        private_redis["stop"]()
        for i in range(2, 6):  # ingested on the other worker while Redis is down
            await pipeline.ingest(b.rt, _sms(i))
        private_redis["start"]()
        # Worker A reconnects to Redis and tells its sockets to resync.
        frames = await _frames_until(ws, lambda f, _: f["type"] == "resync", timeout=20)
        for f in frames:
            last_seq = f.get("seq") or last_seq
            if f["type"] == "message.created":
                seen.append(f["message"]["text"])
        await ws.close()
        async with websockets.connect(f"{a.ws_url}/ws/agent?token={token}&since={last_seq}") as again:
            frames = await _frames_until(
                again, lambda f, fs: len(seen) + sum(x["type"] == "message.created" for x in fs) >= 5)
            seen += [f["message"]["text"] for f in frames if f["type"] == "message.created"]
        assert seen == [f"message {i}" for i in range(1, 6)]


async def test_two_dispatchers_racing_on_postgres_send_each_message_once(pg_url: str) -> None:
    with TwilioRecorder(account_sid=TEST_ACCOUNT_SID, auth_token=TEST_AUTH_TOKEN) as twilio:
        settings = make_settings(pg_url, twilio_account_sid=TEST_ACCOUNT_SID,
                                 twilio_auth_token=TEST_AUTH_TOKEN, twilio_api_base=twilio.base_url,
                                 twilio_default_from="+15550009999")
        async with live_server(settings, dispatch=False) as a, live_server(settings, dispatch=False) as b:
            result = await pipeline.ingest(a.rt, _sms(1))
            ids = []
            for i in range(30):
                msg = await pipeline.reply(a.rt, conversation_id=result.conversation_id,
                                           text=f"reply {i}", author_kind="system")
                ids.append(msg["id"])
            # Both workers claim from the same table at once, several rounds each.
            assert a.rt.dispatcher and b.rt.dispatcher
            await asyncio.gather(*[d.run_once() for d in (a.rt.dispatcher, b.rt.dispatcher) for _ in range(3)])
            bodies = [m["Body"][0] for m in twilio.messages]
        assert sorted(bodies) == sorted(f"reply {i}" for i in range(30))


async def _kill_bus_listeners(redis_url: str, channel: str) -> int:
    """Cut the bus's pub/sub connections to `channel` from the Redis side (as a Redis
    restart or a network blip would), leaving every other client alone; how many."""
    import redis.asyncio as aioredis

    admin = aioredis.from_url(redis_url)
    try:
        ours = [c for c in await admin.client_list()
                if c.get("name") == f"inbox-bus:{channel}" and int(c.get("sub") or 0) > 0]
        for client in ours:
            await admin.client_kill_filter(_id=client["id"])
        return len(ours)
    finally:
        await admin.aclose()


async def _eventually(check: Any, what: str, timeout: float = 10.0) -> None:
    async with asyncio.timeout(timeout):
        while not check():
            await asyncio.sleep(0.02)


async def test_after_a_bus_reconnect_events_are_still_routed_by_view_and_none_lost(
    pg_url: str,
) -> None:
    from urllib.parse import quote

    redis_url = _redis_url()
    settings = make_settings(pg_url, redis_url=redis_url)
    async with live_server(settings) as a, live_server(settings) as b:
        for srv in (a, b):
            await asyncio.wait_for(srv.rt.bus.connected.wait(), 5)  # type: ignore[attr-defined]
        mine, mine_token = await create_agent(a.rt, email="m@x.example", name="Mine", role="agent")
        _open, open_token = await create_agent(a.rt, email="o@x.example", name="Open", role="agent")
        shared = (await pipeline.ingest(b.rt, _sms(1))).conversation_id  # open, nobody's
        theirs = (await pipeline.ingest(b.rt, _sms(2))).conversation_id
        await pipeline.assign(b.rt, conversation_id=theirs, agent_id=mine.id)

        def url(token: str, view: dict[str, Any], since: int | None = None) -> str:
            watch = quote(json.dumps({"view": view}))
            tail = "" if since is None else f"&since={since}"
            return f"{a.ws_url}/ws/agent?token={token}&watch={watch}{tail}"

        seen: dict[str, list[str]] = {"mine": [], "open": []}
        last: dict[str, int] = {}
        views = {"mine": (mine_token, {"assignee": "me"}), "open": (open_token, {"status": "open"})}

        def note(who: str, frames: list[dict[str, Any]]) -> None:
            for f in frames:
                last[who] = f.get("seq") or last.get(who, 0)
                if f["type"] == "message.created":
                    seen[who].append(f"{f['conversation_id']}:{f['message']['text']}")

        sockets = {}
        for who, (token, view) in views.items():
            sockets[who] = await websockets.connect(url(token, view))
            note(who, await _frames_until(sockets[who], lambda f, _: f["type"] == "hello"))

        reloads = a.rt.hub.reloads
        assert await _kill_bus_listeners(redis_url, a.rt.bus.channel) >= 1  # type: ignore[attr-defined]
        during = [await pipeline.ingest(b.rt, _sms(i)) for i in (201, 3)]  # while A reconnects
        for who, ws in sockets.items():  # A is back on the bus: its sockets resync
            note(who, await _frames_until(ws, lambda f, _: f["type"] == "resync", timeout=20))
            await ws.close()
        await _eventually(lambda: a.rt.hub.reloads > reloads and not a.rt.hub.reloading,
                          "routing states reloaded after the reconnect")
        for who, (token, view) in views.items():
            sockets[who] = await websockets.connect(url(token, view, last[who]))
            note(who, await _frames_until(sockets[who], lambda f, _: f["type"] == "caught_up"))

        # The shared conversation is in the open view, not in "mine": after the reconnect
        # its next message goes to the open watcher only, as before the reconnect.
        await pipeline.ingest(b.rt, _sms(101))  # +1555010 0001 again: `shared`
        marker = await pipeline.ingest(b.rt, Inbound(
            channel="sms", provider="twilio", provider_message_id="SMmw-marker",
            sender="+15550100002", sender_kind="phone", recipient="+15550009999",
            text="for mine"))
        assert marker.conversation_id == theirs
        note("open", await _frames_until(
            sockets["open"], lambda f, _: f.get("message", {}).get("text") == "for mine"))
        note("mine", await _frames_until(
            sockets["mine"], lambda f, _: f.get("message", {}).get("text") == "for mine"))
        for ws in sockets.values():
            await ws.close()

    assert seen["mine"] == [f"{theirs}:for mine"]
    # Nothing lost for the open view: every message of an open conversation since it
    # connected (`theirs` is open too), in order, the reconnect's included; no duplicate.
    assert during[0].conversation_id == shared
    assert seen["open"] == [f"{shared}:message 201", f"{during[1].conversation_id}:message 3",
                            f"{shared}:message 101", f"{theirs}:for mine"]
