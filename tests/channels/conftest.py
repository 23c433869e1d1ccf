"""A real server wired to the fake Twilio and Graph APIs, and helpers to drive it.

`env` starts the app under uvicorn on a known port (Twilio signs INBOX_PUBLIC_URL + path,
so the public URL must be the server's own), with Twilio, Meta and the approved WhatsApp
templates configured, and an agent token. It runs once per database backend (the
`database_url` fixture is parametrised over SQLite and PostgreSQL).

The Meta app secret and verify token are the ones of the shared fixtures' own test
vectors, so the pywa X-Hub-Signature-256 vector verifies at our endpoint as captured.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import update

from inbox import store
from inbox.agents import create_agent
from inbox.models import Conversation, Message
from inbox.settings import Settings
from tests.conftest import FIXTURES, make_settings
from tests.fakes.graph_recorder import TEST_ACCESS_TOKEN, TEST_PHONE_NUMBER_ID, GraphRecorder, meta_signature
from tests.fakes.twilio_recorder import TEST_ACCOUNT_SID, TEST_AUTH_TOKEN, TwilioRecorder, twilio_signature
from tests.support.server import LiveServer, free_port, live_server

TWILIO_FIXTURES = FIXTURES / "twilio"
META_FIXTURES = FIXTURES / "whatsapp-cloud"

_vector = json.loads((META_FIXTURES / "signature" / "x-hub-signature-256_vector_pywa.json").read_text())
META_APP_SECRET: str = _vector["app_secret"]
_verification = json.loads(
    (META_FIXTURES / "verification" / "get_hub_challenge_cases_netflie.json").read_text())
META_VERIFY_TOKEN: str = _verification["configured_verify_token"]

DEFAULT_FROM = "+15550000001"
HELP_TEXT = "Shop support: reply STOP to opt out. We answer here within the hour."
TEMPLATES: tuple[dict[str, Any], ...] = (
    {"name": "HX0123456789abcdef0123456789abcdef", "language": "en", "label": "Order update",
     "variables": ["1", "2"]},
    {"name": "order_update", "language": "en_US", "label": "Order update (Meta)",
     "variables": ["1"]},
)


def load(path: Path) -> dict[str, Any]:
    """A fixture file as JSON."""
    data: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return data


@dataclass
class ChannelEnv:
    """The running app, the two provider fakes, and an agent token."""

    server: LiveServer
    twilio: TwilioRecorder
    graph: GraphRecorder
    token: str
    settings: Settings

    @property
    def client(self) -> httpx.AsyncClient:
        return self.server.client

    @property
    def headers(self) -> dict[str, str]:
        return self.server.auth(self.token)

    # -- provider side ----------------------------------------------------------------
    def twilio_url(self, path: str = "/webhooks/twilio", query: str = "") -> str:
        """The URL Twilio signs for `path` (our INBOX_PUBLIC_URL)."""
        return self.settings.public_url + path + (f"?{query}" if query else "")

    async def post_twilio(
        self,
        params: dict[str, Any],
        *,
        path: str = "/webhooks/twilio",
        query: str = "",
        signature: str | None = None,
        sign: bool = True,
    ) -> httpx.Response:
        """POST a Twilio form, signed for our public URL unless told otherwise."""
        headers: dict[str, str] = {}
        if signature is not None:
            headers["X-Twilio-Signature"] = signature
        elif sign:
            headers["X-Twilio-Signature"] = twilio_signature(
                self.twilio_url(path, query), params, TEST_AUTH_TOKEN)
        target = path + (f"?{query}" if query else "")
        return await self.client.post(target, data=params, headers=headers)

    async def post_meta(self, body: dict[str, Any] | bytes, *, signature: str | None = None,
                        sign: bool = True) -> httpx.Response:
        """POST a Meta webhook body, signed with the app secret unless told otherwise."""
        raw = body if isinstance(body, bytes) else json.dumps(body).encode()
        headers = {"Content-Type": "application/json"}
        if signature is not None:
            headers["X-Hub-Signature-256"] = signature
        elif sign:
            headers["X-Hub-Signature-256"] = meta_signature(raw, META_APP_SECRET)
        return await self.client.post("/webhooks/whatsapp", content=raw, headers=headers)

    # -- agent side -------------------------------------------------------------------
    async def api(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        return await self.client.request(method, "/api/v1" + path, headers=self.headers, **kwargs)

    async def get(self, path: str) -> dict[str, Any]:
        response = await self.api("GET", path)
        assert response.status_code == 200, (path, response.status_code, response.text)
        data: dict[str, Any] = response.json()
        return data

    async def reply(self, conversation_id: int, text: str = "", **extra: Any) -> httpx.Response:
        """An agent's reply through POST /api/v1/conversations/{id}/messages."""
        return await self.api("POST", f"/conversations/{conversation_id}/messages",
                              json={"text": text, **extra})

    async def stored(self, channel: str, provider_message_id: str) -> Message | None:
        """The message stored for a provider id on a channel (None when there is none)."""
        async with self.server.rt.sessions() as session:
            return await store.message_by_provider_id(
                session, channel=channel, provider_message_id=provider_message_id)

    async def conversation_of(self, channel: str, provider_message_id: str) -> dict[str, Any]:
        """GET /api/v1/conversations/{id} of the conversation holding that inbound message."""
        message = await self.stored(channel, provider_message_id)
        assert message is not None, f"no {channel} message {provider_message_id} was stored"
        return await self.get(f"/conversations/{message.conversation_id}")

    async def age_conversation(self, conversation_id: int, hours: float) -> None:
        """Move the customer's last message `hours` into the past (the WhatsApp window)."""
        from datetime import timedelta

        from inbox.types import utcnow

        async with self.server.rt.sessions() as session, session.begin():
            await session.exec(  # type: ignore[call-overload]
                update(Conversation).where(Conversation.id == conversation_id)  # type: ignore[arg-type]
                .values(last_customer_at=utcnow() - timedelta(hours=hours)))

    async def message(self, conversation_id: int, message_id: int) -> dict[str, Any]:
        data = await self.get(f"/conversations/{conversation_id}")
        [found] = [m for m in data["messages"] if m["id"] == message_id]
        return found

    async def wait_message(self, conversation_id: int, message_id: int,
                           until: Callable[[dict[str, Any]], bool], timeout: float = 8.0) -> dict[str, Any]:
        """Poll the API until the message satisfies `until`; AssertionError with its last state."""
        deadline = time.monotonic() + timeout
        while True:
            current = await self.message(conversation_id, message_id)
            if until(current):
                return current
            if time.monotonic() > deadline:
                raise AssertionError(f"message {message_id} never got there: {current}")
            await asyncio.sleep(0.03)

    async def wait_sent(self, conversation_id: int, message_id: int) -> dict[str, Any]:
        """Wait until the dispatcher recorded the provider's id for the message."""
        await self.wait_message(conversation_id, message_id,
                                lambda m: m["delivery_status"] not in (None, "pending"))
        async with self.server.rt.sessions() as session:
            stored = await session.get(Message, message_id)
            assert stored is not None
            return {"provider_message_id": stored.provider_message_id,
                    "delivery_status": stored.delivery_status}


def env_settings(database_url: str, port: int, twilio: TwilioRecorder, graph: GraphRecorder,
                 **overrides: Any) -> Settings:
    """Settings pointing every provider at the fakes and Twilio's signatures at `port`."""
    base: dict[str, Any] = dict(
        public_url=f"http://127.0.0.1:{port}",
        twilio_account_sid=TEST_ACCOUNT_SID,
        twilio_auth_token=TEST_AUTH_TOKEN,
        twilio_api_base=twilio.base_url,
        twilio_default_from=DEFAULT_FROM,
        whatsapp_app_secret=META_APP_SECRET,
        whatsapp_verify_token=META_VERIFY_TOKEN,
        whatsapp_access_token=TEST_ACCESS_TOKEN,
        whatsapp_graph_base=graph.base_url,
        whatsapp_phone_number_id=TEST_PHONE_NUMBER_ID,
        whatsapp_templates=TEMPLATES,
        help_text=HELP_TEXT,
        webhook_burst=10_000,
        webhook_rate=10_000.0,
    )
    base.update(overrides)
    return make_settings(database_url, **base)


@pytest.fixture
async def env(database_url: str, twilio_recorder: TwilioRecorder,
              graph_recorder: GraphRecorder) -> AsyncIterator[ChannelEnv]:
    """The app on a known port with Twilio, Meta and templates configured."""
    port = free_port()
    settings = env_settings(database_url, port, twilio_recorder, graph_recorder)
    async with live_server(settings, port=port) as server:
        _agent, token = await create_agent(server.rt, email="agent@channels.example",
                                           name="Agent", role="agent", password="agent-password")
        yield ChannelEnv(server, twilio_recorder, graph_recorder, token, settings)
