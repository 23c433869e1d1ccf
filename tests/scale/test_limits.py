"""Limits and faults: rate limits, frame caps, a flooding visitor, the store going away."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import pytest
import websockets

from inbox.agents import create_agent
from tests.conftest import make_settings
from tests.support.backends import fresh_database
from tests.support.server import live_server
from web.ratelimit import KeyedLimiter, TokenBucket


def test_token_bucket_allows_a_burst_then_the_refill_rate() -> None:
    bucket = TokenBucket(capacity=3, rate=1.0, now=0.0)
    assert [bucket.take(0.0) for _ in range(4)] == [True, True, True, False]
    assert bucket.take(0.5) is False
    assert bucket.take(1.0) is True


def test_keyed_limiter_keeps_sources_apart_and_forgets_the_oldest() -> None:
    limiter = KeyedLimiter(capacity=1, rate=0.0, max_keys=2)
    assert limiter.allow("a", 0) and not limiter.allow("a", 0)
    assert limiter.allow("b", 0)
    assert limiter.allow("c", 0)  # evicts "a"
    assert limiter.allow("a", 0)


async def _recv_until(ws: Any, kind: str, timeout: float = 5.0) -> dict[str, Any]:
    async with asyncio.timeout(timeout):
        while True:
            frame = json.loads(await ws.recv())
            if frame.get("type") == kind:
                return frame  # type: ignore[no-any-return]


@pytest.mark.e2e
async def test_flooding_visitor_is_cut_off_while_others_keep_chatting(sqlite_url: str) -> None:
    settings = make_settings(sqlite_url, chat_burst=5, chat_rate=1.0)
    async with live_server(settings) as srv:
        async with websockets.connect(f"{srv.ws_url}/ws/chat") as flooder, \
                websockets.connect(f"{srv.ws_url}/ws/chat") as calm:
            await _recv_until(flooder, "welcome")
            await _recv_until(calm, "welcome")
            with pytest.raises(websockets.ConnectionClosed) as closed:
                for i in range(500):
                    await flooder.send(json.dumps({"type": "message", "text": f"spam {i}", "client_id": str(i)}))
                async with asyncio.timeout(10):
                    while True:
                        await flooder.recv()
            assert closed.value.rcvd is not None and closed.value.rcvd.code == 1008
            await calm.send(json.dumps({"type": "message", "text": "still here", "client_id": "x"}))
            frame = await _recv_until(calm, "message")
            assert frame["message"]["text"] == "still here"


@pytest.mark.e2e
async def test_oversized_frame_closes_only_that_socket(sqlite_url: str) -> None:
    async with live_server(make_settings(sqlite_url)) as srv:
        async with websockets.connect(f"{srv.ws_url}/ws/chat", max_size=None) as big:
            await _recv_until(big, "welcome")
            await big.send(json.dumps({"type": "message", "text": "x" * 200_000}))
            with pytest.raises(websockets.ConnectionClosed) as closed:
                async with asyncio.timeout(5):
                    while True:
                        await big.recv()
            assert closed.value.rcvd is not None and closed.value.rcvd.code == 1009
        resp = await srv.client.get("/healthz")
        assert resp.status_code == 200


@pytest.mark.e2e
async def test_webhook_flood_from_one_source_gets_429(sqlite_url: str) -> None:
    settings = make_settings(sqlite_url, webhook_burst=3, webhook_rate=0.001, email_secret="s")
    async with live_server(settings) as srv:
        codes = []
        for _ in range(5):
            resp = await srv.client.post("/webhooks/email", content=b"not a mail",
                                         headers={"Authorization": "Bearer wrong"})
            codes.append(resp.status_code)
        assert codes[:3] == [403, 403, 403]
        assert codes[3:] == [429, 429]
        assert resp.json()["error"] == "rate_limited"


class TcpProxy:
    """A TCP relay in front of PostgreSQL that a test can cut and restore."""

    def __init__(self, target_host: str, target_port: int) -> None:
        self.target = (target_host, target_port)
        self.server: asyncio.Server | None = None
        self.port = 0
        self.pipes: set[asyncio.Task[None]] = set()

    async def start(self) -> None:
        self.server = await asyncio.start_server(self._handle, "127.0.0.1", self.port)
        self.port = self.server.sockets[0].getsockname()[1]

    async def cut(self) -> None:
        assert self.server is not None
        self.server.close()
        await self.server.wait_closed()
        for task in list(self.pipes):
            task.cancel()
        await asyncio.gather(*self.pipes, return_exceptions=True)

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_r, up_w = await asyncio.open_connection(*self.target)

        async def pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
            try:
                while data := await src.read(65536):
                    dst.write(data)
                    await dst.drain()
            finally:
                dst.close()

        for task in (asyncio.ensure_future(pipe(reader, up_w)), asyncio.ensure_future(pipe(up_r, writer))):
            self.pipes.add(task)
            task.add_done_callback(self.pipes.discard)


@pytest.mark.e2e
@pytest.mark.postgres
async def test_postgres_outage_gives_503_then_recovers_without_restart(tmp_path: Path) -> None:
    url = await fresh_database("postgres", tmp_path)
    parts = urlsplit(url)
    proxy = TcpProxy(parts.hostname or "127.0.0.1", parts.port or 5432)
    await proxy.start()
    proxied = urlunsplit(parts._replace(netloc=f"{parts.username or 'postgres'}@127.0.0.1:{proxy.port}"))
    async with live_server(make_settings(proxied)) as srv:
        _agent, token = await create_agent(srv.rt, email="a@x.example", name="A", role="agent")
        assert (await srv.client.get("/api/v1/conversations", headers=srv.auth(token))).status_code == 200
        await proxy.cut()
        async with asyncio.timeout(30):  # a 503, not a hang
            resp = await srv.client.get("/api/v1/conversations", headers=srv.auth(token))
        assert resp.status_code == 503
        assert resp.json()["error"] == "unavailable"
        health = await srv.client.get("/healthz")
        assert health.status_code == 503
        await proxy.start()  # same port again
        for _ in range(50):
            resp = await srv.client.get("/api/v1/conversations", headers=srv.auth(token))
            if resp.status_code == 200:
                break
            await asyncio.sleep(0.2)
        assert resp.status_code == 200
    await proxy.cut()

