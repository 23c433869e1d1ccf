"""Bad requests get a JSON `{"error", "detail"}` 4xx and change nothing in the store;
session-cookie writes need the CSRF token; the login page."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select

from inbox import pipeline
from inbox.agents import create_agent
from inbox.models import Agent, Conversation, Event, Message, OutboxRow
from inbox.types import Inbound
from tests.inbox.fast_db import admin_token, agent_token, database_url, sqlite_template  # noqa: F401
from tests.support.server import LiveServer

pytestmark = pytest.mark.e2e


async def snapshot(server: LiveServer) -> tuple[int, ...]:
    """Row counts of everything a bad request could have touched."""
    counts = []
    async with server.rt.sessions() as session:
        for model in (Message, Event, Conversation, OutboxRow, Agent):
            result = await session.exec(select(func.count()).select_from(model))  # type: ignore[call-overload]
            counts.append(int(result.scalar()))
    return tuple(counts)


@pytest.fixture
async def conv_id(server: LiveServer) -> int:
    """A web-chat conversation (its channel can always be answered)."""
    result = await pipeline.ingest(server.rt, Inbound(
        channel="webchat", provider="webchat", provider_message_id="v_bad:1", sender="v_bad",
        sender_kind="webchat", recipient="webchat", text="hello"))
    return result.conversation_id


def assert_error(resp: httpx.Response, status: int, code: str | None = None) -> dict[str, Any]:
    assert resp.status_code == status, resp.text
    assert resp.headers["content-type"].startswith("application/json")
    body: dict[str, Any] = resp.json()
    assert set(body) >= {"error", "detail"} and body["detail"], body
    if code is not None:
        assert body["error"] == code, body
    return body


BAD_BODIES: list[tuple[str, bytes]] = [
    ("malformed_json", b'{"text": "unterminated'),
    ("not_an_object_list", b'["text", "hello"]'),
    ("not_an_object_string", b'"hello"'),
    ("empty", b""),
    ("not_utf8", b'{"text": "\xff\xfe"}'),
    ("text_not_a_string", b'{"text": 5}'),
    ("private_not_bool", b'{"text": "hi", "private": "yes"}'),
    ("template_not_object", b'{"text": "hi", "template": "order_update"}'),
]


async def test_bad_reply_bodies_are_400_and_change_nothing(
    server: LiveServer, agent_token: str, conv_id: int
) -> None:
    before = await snapshot(server)
    for name, body in BAD_BODIES:
        resp = await server.client.post(
            f"/api/v1/conversations/{conv_id}/messages", content=body,
            headers={**server.auth(agent_token), "Content-Type": "application/json"})
        assert resp.status_code == 400, (name, resp.text)
        assert_error(resp, 400, "bad_input")
    assert await snapshot(server) == before


WRONG_TYPES: list[tuple[str, dict[str, Any]]] = [
    ("assign", {"agent_id": "somebody"}),
    ("assign", {"agent_id": True}),
    ("assign", {"agent_id": 1.5}),
    ("status", {"status": 3}),
    ("status", {}),
    ("status", {"status": "resolved-ish"}),
    ("status", {"status": "snoozed", "snoozed_until": "next tuesday"}),
    ("status", {"status": "snoozed", "snoozed_until": "2099-01-01T09:00:00"}),  # no zone
    ("notes", {"text": ["a", "list"]}),
    ("notes", {"text": "   "}),
]


async def test_wrong_types_and_values_are_400_and_change_nothing(
    server: LiveServer, agent_token: str, conv_id: int
) -> None:
    before = await snapshot(server)
    for path, body in WRONG_TYPES:
        resp = await server.client.post(f"/api/v1/conversations/{conv_id}/{path}", json=body,
                                         headers=server.auth(agent_token))
        assert resp.status_code == 400, (path, body, resp.text)
        assert_error(resp, 400, "bad_input")
    assert await snapshot(server) == before


async def test_bad_query_parameters_are_400(server: LiveServer, agent_token: str) -> None:
    for params in ({"channel": "fax"}, {"status": "closed"}, {"handled_by": "robot"},
                   {"limit": "0"}, {"limit": "many"}, {"cursor": "not-a-cursor"},
                   {"assignee": "someone"}):
        resp = await server.client.get("/api/v1/conversations", params=params,
                                       headers=server.auth(agent_token))
        assert resp.status_code == 400, (params, resp.text)
        body = assert_error(resp, 400, "bad_input")
        if "channel" in params:
            assert "fax" in body["detail"] and "webchat" in body["detail"]


async def test_unknown_conversation_is_404_for_reads_and_writes(
    server: LiveServer, agent_token: str, conv_id: int
) -> None:
    before = await snapshot(server)
    auth = server.auth(agent_token)
    for method, path, body in [
        ("GET", "/api/v1/conversations/999999", None),
        ("GET", "/api/v1/conversations/999999/messages", None),
        ("POST", "/api/v1/conversations/999999/messages", {"text": "hi"}),
        ("POST", "/api/v1/conversations/999999/notes", {"text": "hi"}),
        ("POST", "/api/v1/conversations/999999/assign", {"agent_id": "me"}),
        ("POST", "/api/v1/conversations/999999/status", {"status": "resolved"}),
        ("POST", "/api/v1/conversations/999999/take_over", {}),
        ("POST", "/api/v1/conversations/999999/read", {}),
    ]:
        resp = await server.client.request(method, path, json=body, headers=auth)
        assert_error(resp, 404, "not_found")
    assert await snapshot(server) == before


async def test_conversation_id_that_is_not_a_number_is_400(server: LiveServer, agent_token: str) -> None:
    resp = await server.client.get("/api/v1/conversations/abc", headers=server.auth(agent_token))
    assert_error(resp, 400, "bad_input")


async def test_unknown_route_and_wrong_method_answer_json(server: LiveServer, agent_token: str) -> None:
    assert_error(await server.client.get("/api/v1/nothing-here", headers=server.auth(agent_token)),
                 404, "not_found")
    assert_error(await server.client.delete("/api/v1/conversations", headers=server.auth(agent_token)),
                 405, "method_not_allowed")


async def test_unauthenticated_requests_are_401_and_change_nothing(
    server: LiveServer, conv_id: int
) -> None:
    before = await snapshot(server)
    for headers in ({}, {"Authorization": "Bearer inbx_not-a-real-token"}, {"Authorization": "Basic abc"}):
        assert_error(await server.client.get("/api/v1/conversations", headers=headers), 401,
                     "not_authenticated")
        assert_error(await server.client.post(f"/api/v1/conversations/{conv_id}/messages",
                                              json={"text": "hi"}, headers=headers), 401)
    assert await snapshot(server) == before


async def test_faq_editor_may_not_touch_conversations(server: LiveServer, conv_id: int) -> None:
    _agent, token = await create_agent(server.rt, email="faq@test.example", name="Faq", role="faq_editor")
    before = await snapshot(server)
    assert_error(await server.client.get("/api/v1/conversations", headers=server.auth(token)), 403, "forbidden")
    assert_error(await server.client.post(f"/api/v1/conversations/{conv_id}/messages", json={"text": "hi"},
                                          headers=server.auth(token)), 403, "forbidden")
    assert_error(await server.client.post("/api/v1/agents", headers=server.auth(token),
                                          json={"email": "x@y.example", "name": "X", "role": "admin"}),
                 403, "forbidden")
    assert await snapshot(server) == before


async def test_ten_megabyte_body_is_413_and_changes_nothing(
    server: LiveServer, agent_token: str, conv_id: int
) -> None:
    before = await snapshot(server)
    body = b'{"text": "' + b"x" * 10_000_000 + b'"}'
    resp = await server.client.post(f"/api/v1/conversations/{conv_id}/messages", content=body,
                                     headers={**server.auth(agent_token), "Content-Type": "application/json"})
    assert_error(resp, 413, "too_large")
    assert await snapshot(server) == before


async def test_oversized_body_without_content_length_is_413(
    server: LiveServer, agent_token: str, conv_id: int
) -> None:
    async def chunks() -> AsyncIterator[bytes]:
        yield b'{"text": "'
        for _ in range(40):
            yield b"x" * 64_000
        yield b'"}'

    before = await snapshot(server)
    resp = await server.client.post(f"/api/v1/conversations/{conv_id}/messages", content=chunks(),
                                     headers={**server.auth(agent_token), "Content-Type": "application/json"})
    assert_error(resp, 413, "too_large")
    assert await snapshot(server) == before


# ---------------------------------------------------------------------------- sessions


def _csrf(html: str) -> str:
    match = re.search(r'name="csrf" value="([^"]+)"', html) or re.search(r'data-csrf="([^"]+)"', html)
    assert match, "no CSRF token on the page"
    return match.group(1)


async def _log_in(client: httpx.AsyncClient, email: str, password: str) -> str:
    """Log in through the form; returns the session's CSRF token from the inbox page."""
    page = await client.get("/login")
    resp = await client.post("/login", data={"csrf": _csrf(page.text), "email": email,
                                             "password": password})
    assert resp.status_code == 303, resp.text
    inbox = await client.get("/")
    assert inbox.status_code == 200
    return _csrf(inbox.text)


async def test_login_with_wrong_password_is_401_and_sets_no_session(server: LiveServer) -> None:
    await create_agent(server.rt, email="sam@test.example", name="Sam", role="agent", password="right-password")
    async with httpx.AsyncClient(base_url=server.base_url, timeout=10) as client:
        page = await client.get("/login")
        assert page.status_code == 200
        resp = await client.post("/login", data={"csrf": _csrf(page.text), "email": "sam@test.example",
                                                  "password": "wrong-password"})
        assert resp.status_code == 401
        assert "Wrong email or password" in resp.text
        assert (await client.get("/")).status_code == 303  # still sent to the login page
        assert (await client.get("/api/v1/me")).status_code == 401


async def test_login_with_right_password_sets_a_session_that_renders_the_inbox(
    server: LiveServer,
) -> None:
    await create_agent(server.rt, email="sam@test.example", name="Sam", role="agent", password="right-password")
    async with httpx.AsyncClient(base_url=server.base_url, timeout=10) as client:
        await _log_in(client, "SAM@test.example", "right-password")
        assert "inbox_session" in client.cookies
        page = await client.get("/")
        assert page.status_code == 200 and 'id="inbox"' in page.text and "Sam" in page.text
        assert (await client.get("/api/v1/me")).json()["email"] == "sam@test.example"


async def test_login_form_without_its_csrf_token_is_refused(server: LiveServer) -> None:
    await create_agent(server.rt, email="sam@test.example", name="Sam", role="agent", password="right-password")
    async with httpx.AsyncClient(base_url=server.base_url, timeout=10) as client:
        await client.get("/login")
        resp = await client.post("/login", data={"email": "sam@test.example", "password": "right-password"})
        assert resp.status_code == 403
        assert (await client.get("/api/v1/me")).status_code == 401


async def test_session_writes_need_the_csrf_token(server: LiveServer, conv_id: int) -> None:
    await create_agent(server.rt, email="sam@test.example", name="Sam", role="agent", password="right-password")
    async with httpx.AsyncClient(base_url=server.base_url, timeout=10) as client:
        token = await _log_in(client, "sam@test.example", "right-password")
        before = await snapshot(server)
        path = f"/api/v1/conversations/{conv_id}/notes"
        assert_error(await client.post(path, json={"text": "no token"}), 403, "forbidden")
        assert_error(await client.post(path, json={"text": "wrong"}, headers={"X-CSRF-Token": "guess"}),
                     403, "forbidden")
        assert await snapshot(server) == before
        # Reads need no token; a write with it goes through.
        assert (await client.get("/api/v1/conversations")).status_code == 200
        ok = await client.post(path, json={"text": "with token"}, headers={"X-CSRF-Token": token})
        assert ok.status_code == 201, ok.text
