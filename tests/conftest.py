"""Suite-wide fixtures. The core suite runs on SQLite and on PostgreSQL (see backends)."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from inbox.agents import create_agent
from inbox.runtime import Runtime
from inbox.settings import Settings
from tests.support.backends import fresh_database
from tests.support.server import LiveServer, live_server
from web.app import build_runtime

pytest_plugins = ["tests.fakes.fixtures"]

SHARED = Path(os.environ.get("INBOX_SHARED_DIR", Path(__file__).resolve().parents[2] / "shared"))
FIXTURES = SHARED / "fixtures"


# On CI (CI=true, set by .ci/run) every test must run: a skip there means a missing
# server, browser, IMAP daemon, fixture or extra that CI is meant to provide. The
# backends' own skips already fail under CI; this catches every other kind (skipif,
# importorskip) and fails the run, naming the tests.
_SKIPPED_ON_CI: list[str] = []


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    if os.environ.get("CI") == "true" and report.skipped and not hasattr(report, "wasxfail"):
        _SKIPPED_ON_CI.append(report.nodeid)


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    if _SKIPPED_ON_CI and session.exitstatus == 0:
        session.exitstatus = 1
        print(f"\nCI: {len(_SKIPPED_ON_CI)} test(s) skipped, which CI must run: "
              + ", ".join(_SKIPPED_ON_CI[:10]))


def make_settings(database_url: str, **overrides: object) -> Settings:
    """Test settings: fast retries, a fixed secret, no provider credentials."""
    base = dict(
        database_url=database_url,
        secret_key="test-secret-key-0123456789",
        public_url="http://testserver.example",
        outbox_retry_base=0.05,
        outbox_retry_cap=0.2,
        heartbeat_seconds=5.0,
        email_secret="test-email-secret",
    )
    base.update(overrides)
    return Settings(**base)  # type: ignore[arg-type]


@pytest.fixture(params=["sqlite", "postgres"])
def backend(request: pytest.FixtureRequest) -> str:
    """Each core test runs once per database backend."""
    return str(request.param)


@pytest.fixture
async def database_url(backend: str, tmp_path: Path) -> str:
    """A fresh, migrated database of the current backend."""
    return await fresh_database(backend, tmp_path)


@pytest.fixture
async def sqlite_url(tmp_path: Path) -> str:
    """A fresh, migrated SQLite database (for tests that need only one backend)."""
    return await fresh_database("sqlite", tmp_path)


@pytest.fixture
def settings(database_url: str) -> Settings:
    """Settings on the current backend."""
    return make_settings(database_url)


@pytest.fixture
async def rt(settings: Settings) -> AsyncIterator[Runtime]:
    """A runtime without a running dispatcher or responders (pipeline-level tests)."""
    runtime = await build_runtime(settings, migrate_db=False, responders=lambda s: [])
    try:
        yield runtime
    finally:
        await runtime.drain()
        await runtime.close()


@pytest.fixture
async def server(settings: Settings) -> AsyncIterator[LiveServer]:
    """The real app under uvicorn on a free port (dispatcher on, no responders)."""
    async with live_server(settings) as srv:
        yield srv


@pytest.fixture
async def admin_token(server: LiveServer) -> str:
    """An API token of an admin on the live server."""
    _agent, token = await create_agent(server.rt, email="admin@test.example", name="Admin",
                                       role="admin", password="admin-password")
    return token


@pytest.fixture
async def agent_token(server: LiveServer) -> str:
    """An API token of a plain agent on the live server."""
    _agent, token = await create_agent(server.rt, email="agent@test.example", name="Agent",
                                       role="agent", password="agent-password")
    return token
