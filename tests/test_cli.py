"""The `inbox` command, run as a real subprocess against a temporary SQLite database."""

from __future__ import annotations

import asyncio
import os
import sqlite3
import sys
from pathlib import Path

import pytest

from tests.conftest import make_settings
from tests.support.server import live_server

pytestmark = pytest.mark.e2e

INBOX = str(Path(sys.executable).with_name("inbox"))


def _env(db: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("INBOX_", "TWILIO_", "WHATSAPP_"))}
    env.update(INBOX_DATABASE_URL=f"sqlite+aiosqlite:///{db}", INBOX_SECRET_KEY="cli-test-secret")
    return env


async def run_inbox(*args: str, db: Path, cwd: Path,
                    env: dict[str, str] | None = None) -> tuple[int, str, str]:
    """Run `inbox ARGS` without blocking the loop (a live server may be serving in it);
    `env` overrides variables of the test environment."""
    proc = await asyncio.create_subprocess_exec(
        INBOX, *args, cwd=cwd, env={**_env(db), **(env or {})},
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await asyncio.wait_for(proc.communicate(), timeout=60)
    return proc.returncode or 0, out.decode(), err.decode()


def _count(db: Path, table: str) -> int:
    with sqlite3.connect(db) as conn:
        return int(conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0])


async def test_agents_create_prints_a_working_token_alone_on_the_last_line(tmp_path: Path) -> None:
    db = tmp_path / "inbox.db"
    code, out, err = await run_inbox("agents", "create", "--email", "Sam@Shop.example", "--name", "Sam",
                                     "--role", "agent", db=db, cwd=tmp_path)
    assert code == 0, err
    token = out.rstrip("\n").splitlines()[-1]
    assert token.startswith("inbx_") and " " not in token

    settings = make_settings(f"sqlite+aiosqlite:///{db}")
    async with live_server(settings) as server:
        me = await server.client.get("/api/v1/me", headers=server.auth(token))
        assert me.status_code == 200, me.text
        assert me.json() == {"id": me.json()["id"], "name": "Sam", "email": "sam@shop.example",
                             "role": "agent"}
        conversations = await server.client.get("/api/v1/conversations", headers=server.auth(token))
        assert conversations.status_code == 200


async def test_agents_create_refuses_a_duplicate_email_with_a_message(tmp_path: Path) -> None:
    db = tmp_path / "inbox.db"
    args = ("agents", "create", "--email", "sam@shop.example", "--name", "Sam", "--role", "admin")
    assert (await run_inbox(*args, db=db, cwd=tmp_path))[0] == 0
    code, out, err = await run_inbox(*args, db=db, cwd=tmp_path)
    assert code == 2
    assert "already exists" in err and "Traceback" not in err


async def test_demo_twice_does_not_duplicate_conversations(tmp_path: Path) -> None:
    db = tmp_path / "inbox.db"
    code, out, err = await run_inbox("demo", db=db, cwd=tmp_path)
    assert code == 0, err
    counts = {t: _count(db, t) for t in ("conversation", "message", "contact", "agent")}
    assert counts["conversation"] >= 4 and counts["agent"] == 3
    token = next(line.split(":", 1)[1].strip() for line in out.splitlines() if line.startswith("API token"))

    code, out, err = await run_inbox("demo", db=db, cwd=tmp_path)
    assert code == 0, err
    assert {t: _count(db, t) for t in counts} == counts

    # The first run's admin token still works after the second run.
    async with live_server(make_settings(f"sqlite+aiosqlite:///{db}")) as server:
        listed = await server.client.get("/api/v1/conversations", headers=server.auth(token))
        assert listed.status_code == 200
        assert len(listed.json()["items"]) == counts["conversation"]


async def test_simulate_webchat_reaches_a_live_server(tmp_path: Path, sqlite_url: str) -> None:
    async with live_server(make_settings(sqlite_url)) as server:
        code, out, err = await run_inbox("simulate", "webchat", "--text", "Where is my order?",
                                         "--url", server.base_url, "--wait", "0.5",
                                         db=tmp_path / "unused.db", cwd=tmp_path)
        assert code == 0, err
        assert "visitor token:" in out
        assert "[customer] Where is my order?" in out
        async with server.rt.sessions() as session:
            from inbox import store

            events = await store.events_after(session, seq=0)
    created = [e for e in events if e.type == "message.created"]
    assert [e.payload["message"]["text"] for e in created] == ["Where is my order?"]
    assert created[0].payload["conversation"]["channel"] == "webchat"


@pytest.mark.parametrize(("env", "named"), [
    ({}, "PostgreSQL"),  # SQLite serves one worker
    ({"INBOX_DATABASE_URL": "postgresql+asyncpg://nobody@127.0.0.1:1/none"}, "INBOX_REDIS_URL"),
])
async def test_serve_refuses_several_workers_without_postgres_and_redis(
    tmp_path: Path, env: dict[str, str], named: str
) -> None:
    code, _out, err = await run_inbox("serve", "--workers", "2", "--port", "1",
                                      db=tmp_path / "inbox.db", cwd=tmp_path, env=env)
    assert code == 2
    assert named in err and "several workers" in err
