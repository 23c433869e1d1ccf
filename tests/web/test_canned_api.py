"""Canned responses and contact merges over HTTP on a real server: roles, validation
reasons, duplicate shortcuts, and the merge/undo/duplicates routes."""

from __future__ import annotations

from typing import Any

import pytest

from inbox import pipeline
from inbox.types import Inbound
from tests.inbox.fast_db import admin_token, agent_token, database_url, sqlite_template  # noqa: F401
from tests.support.server import LiveServer

pytestmark = pytest.mark.e2e


class Api:
    """Bearer token, JSON in and out, the status checked."""

    def __init__(self, server: LiveServer, token: str) -> None:
        self.client, self.headers = server.client, server.auth(token)

    async def call(self, method: str, path: str, body: Any = None, expect: int = 200,
                   **params: Any) -> Any:
        resp = await self.client.request(method, f"/api/v1{path}", json=body, params=params,
                                         headers=self.headers)
        assert resp.status_code == expect, resp.text
        return resp.json() if resp.content else None


def sms(sender: str, name: str) -> Inbound:
    return Inbound(channel="sms", provider="twilio", provider_message_id=f"SMcanned{sender}",
                   sender=sender, sender_kind="phone", recipient="+15550009999", text="hi",
                   display_name=name)


async def test_agents_list_canned_responses_but_only_admins_write_them(
    server: LiveServer, admin_token: str, agent_token: str
) -> None:
    admin, agent = Api(server, admin_token), Api(server, agent_token)
    body = {"shortcut": "shipping", "title": "Shipping times", "text": "We ship in 2 days."}
    await agent.call("POST", "/canned", body, expect=403)
    created = await admin.call("POST", "/canned", body, expect=201)
    await admin.call("POST", "/canned", {"shortcut": "returns", "text": "30 days to return."}, expect=201)

    found = await agent.call("GET", "/canned", q="SHIP")
    assert [c["shortcut"] for c in found["items"]] == ["shipping"]
    assert len((await agent.call("GET", "/canned"))["items"]) == 2

    await agent.call("PUT", f"/canned/{created['id']}", {"text": "x"}, expect=403)
    await agent.call("DELETE", f"/canned/{created['id']}", expect=403)
    changed = await admin.call("PUT", f"/canned/{created['id']}", {"text": "We ship in 1 day."})
    assert changed["text"] == "We ship in 1 day." and changed["title"] == "Shipping times"
    await admin.call("DELETE", f"/canned/{created['id']}", expect=204)
    await admin.call("DELETE", f"/canned/{created['id']}", expect=404)


async def test_canned_validation_answers_400_with_reasons_and_a_taken_shortcut_409(
    server: LiveServer, admin_token: str
) -> None:
    admin = Api(server, admin_token)
    bad = await admin.call("POST", "/canned", {"shortcut": "has space", "title": 7}, expect=400)
    assert len(bad["reasons"]) == 3  # shortcut, title, missing text
    assert any("shortcut" in r for r in bad["reasons"]) and any("text" in r for r in bad["reasons"])
    await admin.call("POST", "/canned", {"shortcut": "hello", "text": "Hi!"}, expect=201)
    other = await admin.call("POST", "/canned", {"shortcut": "bye", "text": "Bye!"}, expect=201)
    dup = await admin.call("POST", "/canned", {"shortcut": "Hello", "text": "Hey"}, expect=409)
    assert dup["error"] == "conflict" and "/hello" in dup["detail"]
    await admin.call("PUT", f"/canned/{other['id']}", {"shortcut": "hello"}, expect=409)
    await admin.call("PUT", "/canned/999999", {"text": "x"}, expect=404)
    await admin.call("PUT", f"/canned/{other['id']}", {"text": ""}, expect=400)


async def test_merge_duplicates_and_undo_over_http(server: LiveServer, agent_token: str) -> None:
    agent = Api(server, agent_token)
    one = await pipeline.ingest(server.rt, sms("+15550102040", "Kim Park"))
    two = await pipeline.ingest(server.rt, sms("+15550102041", "kim park"))
    found = await agent.call("GET", f"/contacts/{one.contact_id}/duplicates")
    assert [(s["contact"]["id"], s["reason"]) for s in found["items"]] == [(two.contact_id, "same name")]

    await agent.call("POST", f"/contacts/{one.contact_id}/merge", {"into": one.contact_id}, expect=400)
    await agent.call("POST", f"/contacts/{one.contact_id}/merge", {}, expect=400)
    record = await agent.call("POST", f"/contacts/{two.contact_id}/merge", {"into": one.contact_id},
                              expect=201)
    assert record["conversation_ids"] == [two.conversation_id] and record["merged_by"] == "Agent"

    merged = await agent.call("GET", f"/contacts/{two.contact_id}")
    assert merged["id"] == one.contact_id and merged["merged_into"] == one.contact_id
    assert {c["id"] for c in merged["conversations"]} == {one.conversation_id, two.conversation_id}
    assert "merged_into" not in await agent.call("GET", f"/contacts/{one.contact_id}")
    assert (await agent.call("GET", f"/contacts/{one.contact_id}/duplicates"))["items"] == []

    await agent.call("POST", f"/merges/{record['id']}/undo")
    await agent.call("POST", f"/merges/{record['id']}/undo", expect=409)
    back = await agent.call("GET", f"/contacts/{two.contact_id}")
    assert back["id"] == two.contact_id and "merged_into" not in back
