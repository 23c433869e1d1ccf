"""A web-chat visitor who left an email and closed the chat still gets the late reply."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
import websockets

from inbox.agents import create_agent
from tests.email_e2e.helpers import SmtpSink, eventually, mail_settings
from tests.support.server import live_server

pytestmark = pytest.mark.e2e


async def _next(ws: Any, kind: str) -> dict[str, Any]:
    async with asyncio.timeout(5):
        while True:
            frame = json.loads(await ws.recv())
            if frame.get("type") == kind:
                return frame  # type: ignore[no-any-return]


async def test_reply_to_a_visitor_who_left_goes_to_their_email_and_not_while_online(
    sqlite_url: str,
) -> None:
    relay = SmtpSink()
    await relay.start()
    try:
        settings = mail_settings(sqlite_url, smtp_host="127.0.0.1", smtp_port=relay.port,
                                 smtp_starttls=False)
        async with live_server(settings) as srv:
            _agent, token = await create_agent(srv.rt, email="a@x.example", name="A", role="agent")
            async with websockets.connect(f"{srv.ws_url}/ws/chat") as visitor:
                await _next(visitor, "welcome")
                await visitor.send(json.dumps({"type": "message", "text": "Do you ship to Oslo?",
                                               "client_id": "1"}))
                first = await _next(visitor, "message")
                await visitor.send(json.dumps({"type": "identify", "email": "Ola@Example.com",
                                               "name": "Ola"}))
                await asyncio.sleep(0.2)
                conversation_id = first["conversation_id"]
                # While the visitor is here, the answer goes to the chat only.
                resp = await srv.client.post(f"/api/v1/conversations/{conversation_id}/messages",
                                             json={"text": "Yes, in 3 days."}, headers=srv.auth(token))
                assert resp.status_code == 201
                assert (await _next(visitor, "message"))["message"]["text"] == "Yes, in 3 days."
            # The visitor closed the tab; a later answer is mailed to them.
            resp = await srv.client.post(f"/api/v1/conversations/{conversation_id}/messages",
                                         json={"text": "Shipping is free this week."},
                                         headers=srv.auth(token))
            assert resp.status_code == 201

            async def mailed() -> bool:
                return len(relay.received) == 1

            await eventually(mailed)
            await asyncio.sleep(0.3)
            [(_sender, recipients, _raw)] = relay.received
            [mail] = relay.mails()
            assert recipients == ["Ola@Example.com"]
            body = mail.get_body(preferencelist=("plain",))
            assert body is not None and "Shipping is free this week." in body.get_content()
            assert "Yes, in 3 days." not in body.get_content()
    finally:
        await relay.stop()
