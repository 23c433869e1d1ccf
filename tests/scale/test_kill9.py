"""A worker killed with SIGKILL mid-traffic loses no acknowledged webhook, and the
provider's retries of the unanswered ones store each message once: on PostgreSQL, and on
SQLite, whose commits are not fsynced (WAL, synchronous=NORMAL) while a checkpointer
copies the WAL into the database file alongside (inbox.checkpoint)."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
from pathlib import Path
from urllib.parse import urlencode

import httpx
import pytest
import websockets
from sqlalchemy import func, select

from connectors.simulate import twilio_form
from inbox.db import make_engine, make_sessionmaker
from inbox.models import Message
from tests.fakes.twilio_recorder import TEST_ACCOUNT_SID, TEST_AUTH_TOKEN
from tests.support.backends import fresh_database
from tests.support.server import free_port
from twilio.request_validator import RequestValidator

pytestmark = pytest.mark.e2e


def _start(env: dict[str, str], port: int) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "inbox.cli", "serve", "--port", str(port), "--log-level", "warning"],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


async def _wait_up(base: str) -> None:
    async with httpx.AsyncClient() as client:
        for _ in range(200):
            try:
                if (await client.get(base + "/healthz")).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            await asyncio.sleep(0.05)
    raise RuntimeError("server did not come up")


def _request(base: str, i: int) -> tuple[str, dict[str, str]]:
    form = twilio_form(sender=f"+1555020{i % 50:04d}", recipient="+15550009999", text=f"order question {i}",
                       whatsapp=False, name=None, account_sid=TEST_ACCOUNT_SID)
    form["MessageSid"] = form["SmsSid"] = form["SmsMessageSid"] = f"SMkill{i:05d}"
    signature = RequestValidator(TEST_AUTH_TOKEN).compute_signature(base + "/webhooks/twilio", form)
    return urlencode(form), {"X-Twilio-Signature": signature,
                             "Content-Type": "application/x-www-form-urlencoded"}


@pytest.mark.parametrize("kind", ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
async def test_sigkill_mid_traffic_keeps_every_acknowledged_webhook(kind: str, tmp_path: Path) -> None:
    url = await fresh_database(kind, tmp_path)
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    env = {**os.environ, "INBOX_DATABASE_URL": url, "INBOX_SECRET_KEY": "kill9-secret",
           "INBOX_PUBLIC_URL": base, "TWILIO_ACCOUNT_SID": TEST_ACCOUNT_SID,
           "TWILIO_AUTH_TOKEN": TEST_AUTH_TOKEN, "TWILIO_API_BASE": "http://127.0.0.1:9"}
    env.pop("INBOX_REDIS_URL", None)
    proc = _start(env, port)
    await _wait_up(base)
    acknowledged: set[int] = set()
    unanswered: set[int] = set()
    total = 200

    async def post(client: httpx.AsyncClient, i: int) -> None:
        body, headers = _request(base, i)
        try:
            resp = await client.post(base + "/webhooks/twilio", content=body, headers=headers)
            (acknowledged if resp.status_code == 200 else unanswered).add(i)
        except httpx.HTTPError:
            unanswered.add(i)

    async with httpx.AsyncClient(timeout=5) as client:
        async def killer() -> None:
            while len(acknowledged) < 40:
                await asyncio.sleep(0.01)
            proc.send_signal(signal.SIGKILL)

        sem = asyncio.Semaphore(8)

        async def bounded(i: int) -> None:
            async with sem:
                await post(client, i)

        await asyncio.gather(killer(), *[bounded(i) for i in range(total)])
    proc.wait()
    assert acknowledged and unanswered, "the kill should land mid-traffic"

    proc = _start(env, port)  # the provider retries what got no answer
    try:
        await _wait_up(base)
        async with httpx.AsyncClient(timeout=5) as client:
            for i in sorted(unanswered) + sorted(acknowledged)[:20]:  # + some duplicate retries
                body, headers = _request(base, i)
                assert (await client.post(base + "/webhooks/twilio", content=body, headers=headers)).status_code == 200

        engine = make_engine(url)
        async with make_sessionmaker(engine)() as session:
            # Customer messages only: the FAQ bot may have answered some of them.
            rows = (await session.exec(select(Message.provider_message_id, func.count())  # type: ignore[call-overload]
                                       .where(Message.direction == "in")
                                       .group_by(Message.provider_message_id))).all()
        await engine.dispose()
        counts = dict(rows)
        assert all(counts.get(f"SMkill{i:05d}") == 1 for i in acknowledged)
        assert set(counts) == {f"SMkill{i:05d}" for i in range(total)}
        assert set(counts.values()) == {1}

        # An agent replaying the log sees every stored message once.
        token_out = subprocess.run(
            [sys.executable, "-m", "inbox.cli", "agents", "create", "--email", "k@x.example",
             "--name", "K", "--role", "agent"], env=env, capture_output=True, text=True, check=True)
        token = token_out.stdout.strip().splitlines()[-1]
        seen: list[str] = []
        async with websockets.connect(f"ws://127.0.0.1:{port}/ws/agent?token={token}&since=0") as ws:
            async with asyncio.timeout(30):
                while len(seen) < total:
                    frame = json.loads(await ws.recv())
                    if frame["type"] == "message.created" and frame["message"]["author"] == "customer":
                        seen.append(frame["message"]["text"])
        assert sorted(seen) == sorted(f"order question {i}" for i in range(total))
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=15)
