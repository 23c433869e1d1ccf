"""The FAQ API, editor page and import/export CLI on a real server and database."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from faq.cli import import_items, read_items
from faq.demo import SHOP_FAQ
from faq.wiring import build_responders
from inbox import pipeline
from inbox.agents import create_agent
from inbox.types import Inbound
from tests.conftest import make_settings
from tests.support.server import LiveServer, live_server

REPO = Path(__file__).resolve().parents[2]
INBOX = Path(sys.executable).parent / "inbox"


@pytest.fixture
async def srv(database_url: str) -> AsyncIterator[LiveServer]:
    """The real app with the FAQ responder wired (sharing the API's FaqService)."""
    async with live_server(make_settings(database_url), responders=build_responders) as server:
        yield server


@pytest.fixture
async def tokens(srv: LiveServer) -> dict[str, str]:
    out = {}
    for role in ("admin", "faq_editor", "agent"):  # no passwords: argon2 is slow on purpose
        _agent, token = await create_agent(srv.rt, email=f"{role}@test.example", name=role.title(),
                                           role=role)
        out[role] = token
    return out


def _entry(**overrides: Any) -> dict[str, Any]:
    body = {"question": "Do you offer student discounts?",
            "alternates": ["Is there a discount for students?"],
            "answer": "Yes: **10% off** with a valid student ID.", "tags": ["Discounts"]}
    body.update(overrides)
    return body


async def _load_shop_faq(srv: LiveServer) -> None:
    items, problems = read_items(SHOP_FAQ)
    assert problems == [] and (await import_items(srv.rt, items))[2] == []


async def _customer(srv: LiveServer, text: str, visitor: str) -> int:
    result = await pipeline.ingest(srv.rt, Inbound(
        channel="webchat", provider="webchat", provider_message_id=f"{visitor}:{text}",
        sender=visitor, sender_kind="webchat", text=text, recipient="webchat"))
    await srv.rt.drain()
    return result.conversation_id


async def test_faq_entries_can_be_created_read_searched_updated_and_deleted(
    srv: LiveServer, tokens: dict[str, str]
) -> None:
    auth = srv.auth(tokens["faq_editor"])
    created = await srv.client.post("/api/v1/faqs", json=_entry(), headers=auth)
    assert created.status_code == 201, created.text
    entry = created.json()
    assert entry["question"] == "Do you offer student discounts?"
    assert entry["tags"] == ["discounts"] and entry["channels"] == [] and entry["enabled"] is True
    assert (entry["auto_answers"], entry["handovers_after_answer"], entry["last_used_at"]) == (0, 0, None)
    other = await srv.client.post("/api/v1/faqs", json=_entry(question="Where are your stores?",
                                                              alternates=[], answer="Seoul."),
                                  headers=auth)
    assert other.status_code == 201

    got = await srv.client.get(f"/api/v1/faqs/{entry['id']}", headers=auth)
    assert got.json() == entry
    found = await srv.client.get("/api/v1/faqs", params={"q": "STUDENT"}, headers=auth)
    assert [e["id"] for e in found.json()["items"]] == [entry["id"]]
    everything = await srv.client.get("/api/v1/faqs", headers=auth)
    assert len(everything.json()["items"]) == 2

    put = await srv.client.put(f"/api/v1/faqs/{entry['id']}",
                               json={"enabled": False, "channels": ["email", "sms"]}, headers=auth)
    assert put.status_code == 200, put.text
    assert put.json()["enabled"] is False and put.json()["channels"] == ["sms", "email"]
    assert put.json()["question"] == entry["question"]

    deleted = await srv.client.delete(f"/api/v1/faqs/{entry['id']}", headers=auth)
    assert deleted.status_code == 204
    gone = await srv.client.get(f"/api/v1/faqs/{entry['id']}", headers=auth)
    assert gone.status_code == 404


async def test_invalid_entries_are_refused_with_every_reason(
    srv: LiveServer, tokens: dict[str, str]
) -> None:
    auth = srv.auth(tokens["admin"])
    resp = await srv.client.post("/api/v1/faqs", json={"alternates": "nope", "channels": ["fax"],
                                                       "colour": "red"}, headers=auth)
    assert resp.status_code == 400
    reasons = resp.json()["reasons"]
    assert "question: required" in reasons and "answer: required" in reasons
    assert "alternates: must be a list of strings" in reasons
    assert any(r.startswith("channels: unknown channel 'fax'") for r in reasons)
    assert any(r.startswith("colour: unknown field") for r in reasons)

    bad_template = await srv.client.post("/api/v1/faqs", json=_entry(answer="Hi {{ customer.name }}"),
                                         headers=auth)
    assert bad_template.status_code == 400
    assert "unknown template variable customer" in bad_template.json()["detail"]
    syntax = await srv.client.post("/api/v1/faqs", json=_entry(answer="Hi {{ order.number"),
                                   headers=auth)
    assert syntax.status_code == 400 and "template error" in syntax.json()["detail"]

    first = await srv.client.post("/api/v1/faqs", json=_entry(external_id="students"), headers=auth)
    assert first.status_code == 201
    again = await srv.client.post("/api/v1/faqs", json=_entry(external_id="students"), headers=auth)
    assert again.status_code == 409
    not_json = await srv.client.post("/api/v1/faqs", content=b"{", headers=auth)
    assert not_json.status_code == 400


async def test_agents_may_try_the_matcher_but_not_edit(srv: LiveServer, tokens: dict[str, str]) -> None:
    agent = srv.auth(tokens["agent"])
    assert (await srv.client.post("/api/v1/faqs", json=_entry(), headers=agent)).status_code == 403
    assert (await srv.client.get("/api/v1/faqs", headers=agent)).status_code == 403
    assert (await srv.client.get("/api/v1/faq/unanswered", headers=agent)).status_code == 403
    match = await srv.client.post("/api/v1/faq/match", json={"text": "hello"}, headers=agent)
    assert match.status_code == 200
    assert (await srv.client.get("/api/v1/faqs")).status_code == 401


async def test_match_reports_entry_confidence_and_the_policys_verdict(
    srv: LiveServer, tokens: dict[str, str]
) -> None:
    await _load_shop_faq(srv)
    auth = srv.auth(tokens["agent"])
    resp = await srv.client.post("/api/v1/faq/match", json={"text": "How long does shipping take?"},
                                 headers=auth)
    assert resp.status_code == 200
    body = resp.json()
    assert set(body["entry"]) == {"id", "external_id", "question", "answer"}
    assert body["entry"]["external_id"] == "shipping-time"
    assert 0.0 <= body["confidence"] <= 1.0 and body["would_answer"] is True
    assert body["candidates"][0] == {"id": body["entry"]["id"],
                                     "question": "How long does shipping take?",
                                     "confidence": body["confidence"]}

    charged = await srv.client.post("/api/v1/faq/match",
                                    json={"text": "I was charged twice for order 10234"}, headers=auth)
    assert charged.json()["would_answer"] is False
    assert charged.json()["reason"] == "payment_problem"
    empty = await srv.client.post("/api/v1/faq/match", json={"text": " "}, headers=auth)
    assert empty.status_code == 400


async def test_entry_saved_through_the_api_is_answered_at_once(
    srv: LiveServer, tokens: dict[str, str]
) -> None:
    await _load_shop_faq(srv)
    cid = await _customer(srv, "Do you offer student discounts?", "v_first")
    detail = await srv.client.get(f"/api/v1/conversations/{cid}", headers=srv.auth(tokens["admin"]))
    assert not any(m["author"] == "bot" and "faq_entry_id" in m["meta"]
                   for m in detail.json()["messages"])

    created = await srv.client.post("/api/v1/faqs", json=_entry(), headers=srv.auth(tokens["admin"]))
    cid = await _customer(srv, "Do you offer student discounts?", "v_second")
    detail = await srv.client.get(f"/api/v1/conversations/{cid}", headers=srv.auth(tokens["admin"]))
    (bot,) = [m for m in detail.json()["messages"] if m["author"] == "bot"]
    assert bot["text"] == "Yes: 10% off with a valid student ID."
    assert bot["meta"]["faq_entry_id"] == created.json()["id"]
    stats = await srv.client.get(f"/api/v1/faqs/{created.json()['id']}", headers=srv.auth(tokens["admin"]))
    assert stats.json()["auto_answers"] == 1 and stats.json()["last_used_at"]


async def test_preview_renders_each_channel_and_fills_personal_answers(
    srv: LiveServer, tokens: dict[str, str]
) -> None:
    auth = srv.auth(tokens["faq_editor"])
    created = await srv.client.post("/api/v1/faqs", json=_entry(
        question="Where is my order?",
        answer="Order **{{ order.number }}** is _{{ order.status }}_.",
        answer_fallback="See Account > Orders."), headers=auth)
    eid = created.json()["id"]
    shown = {}
    for channel in ("sms", "whatsapp", "email", "webchat"):
        resp = await srv.client.post(f"/api/v1/faqs/{eid}/preview", json={"channel": channel},
                                     headers=auth)
        assert resp.status_code == 200, resp.text
        shown[channel] = resp.json()
    assert shown["sms"]["text"] == "Order 10234 is shipped."
    assert shown["webchat"]["text"] == "Order 10234 is shipped."
    assert shown["whatsapp"]["text"] == "Order *10234* is _shipped_."
    assert shown["email"]["html"] == "<p>Order <strong>10234</strong> is <em>shipped</em>.</p>"
    assert shown["sms"]["personal"] is True
    assert shown["sms"]["fallback"] == {"text": "See Account > Orders.", "html": None}
    unsaved = await srv.client.post("/api/v1/faq/preview",
                                    json={"channel": "email", "answer": "<b>hi</b> & **bye**"},
                                    headers=auth)
    assert unsaved.json()["html"] == "<p>&lt;b&gt;hi&lt;/b&gt; &amp; <strong>bye</strong></p>"
    bad = await srv.client.post(f"/api/v1/faqs/{eid}/preview", json={"channel": "fax"}, headers=auth)
    assert bad.status_code == 400


async def test_unanswered_questions_are_grouped_and_become_entries_or_alternates(
    srv: LiveServer, tokens: dict[str, str]
) -> None:
    await _load_shop_faq(srv)
    asks = ["Is your leather vegan?", "Can my dog come into the shop?", "is the leather vegan??",
            "Are pets allowed in your shop?", "is your leather vegan or real", "can my dog come in the shop"]
    for n, text in enumerate(asks):
        await _customer(srv, text, f"v_{n}")
    auth = srv.auth(tokens["faq_editor"])
    groups = (await srv.client.get("/api/v1/faq/unanswered", headers=auth)).json()["groups"]
    assert [g["count"] for g in groups] == [3, 2, 1]
    vegan, dogs, _pets = groups
    assert sorted(q["text"] for q in vegan["questions"]) == sorted(
        ["Is your leather vegan?", "is the leather vegan??", "is your leather vegan or real"])
    assert vegan["text"] == "is your leather vegan or real"  # the newest names the group
    assert vegan["reasons"] == {"not_confident": 3}

    made = await srv.client.post(f"/api/v1/faq/unanswered/{vegan['questions'][1]['id']}/create-entry",
                                 json={"answer": "Our leather is real; the vegan line is marked."},
                                 headers=auth)
    assert made.status_code == 201, made.text
    assert made.json()["question"] == "is your leather vegan or real"
    assert sorted(made.json()["alternates"]) == ["Is your leather vegan?", "is the leather vegan??"]

    left = (await srv.client.get("/api/v1/faq/unanswered", headers=auth)).json()["groups"]
    assert [g["id"] for g in left] == [dogs["id"], _pets["id"]]
    stores = (await srv.client.get("/api/v1/faqs", params={"q": "where are your stores"},
                                   headers=auth)).json()["items"][0]
    added = await srv.client.post(f"/api/v1/faq/unanswered/{dogs['id']}/add-alternate",
                                  json={"entry_id": stores["id"]}, headers=auth)
    assert added.status_code == 200, added.text
    assert set(added.json()["added"]) == {"Can my dog come into the shop?", "can my dog come in the shop"}
    assert set(added.json()["added"]) <= set(added.json()["alternates"])
    after = (await srv.client.get("/api/v1/faq/unanswered", headers=auth)).json()["groups"]
    assert [g["id"] for g in after] == [_pets["id"]]
    # The new entry answers at once.
    cid = await _customer(srv, "Is your leather vegan?", "v_later")
    detail = await srv.client.get(f"/api/v1/conversations/{cid}", headers=srv.auth(tokens["admin"]))
    assert any(m["meta"].get("faq_entry_id") == made.json()["id"] for m in detail.json()["messages"])
    missing = await srv.client.post(f"/api/v1/faq/unanswered/{dogs['id']}/add-alternate",
                                    json={"entry_id": stores["id"]}, headers=auth)
    assert missing.status_code == 404


async def _login(client: httpx.AsyncClient, email: str, password: str) -> None:
    page = await client.get("/login")
    csrf = re.search(r'name="csrf" value="([^"]+)"', page.text)
    assert csrf is not None
    resp = await client.post("/login", data={"csrf": csrf.group(1), "email": email,
                                             "password": password})
    assert resp.status_code == 303, resp.text


async def test_editor_page_needs_login_and_an_faq_role(srv: LiveServer) -> None:
    for role in ("faq_editor", "agent"):
        await create_agent(srv.rt, email=f"{role}@test.example", name=role.title(), role=role,
                           password=f"{role}-password")
    async with httpx.AsyncClient(base_url=srv.base_url) as anonymous:
        resp = await anonymous.get("/faq")
        assert resp.status_code == 303 and resp.headers["location"] == "/login"
    async with httpx.AsyncClient(base_url=srv.base_url) as agent:
        await _login(agent, "agent@test.example", "agent-password")
        assert (await agent.get("/faq")).status_code == 403
    async with httpx.AsyncClient(base_url=srv.base_url) as editor:
        await _login(editor, "faq_editor@test.example", "faq_editor-password")
        page = await editor.get("/faq")
        assert page.status_code == 200 and 'src="/static/faq/editor.js"' in page.text
        assert "<script>" not in page.text and "style=" not in page.text
        # A cookie session must send the CSRF token on writes.
        refused = await editor.post("/api/v1/faqs", json=_entry())
        assert refused.status_code == 403
        csrf = re.search(r'data-csrf="([^"]+)"', page.text)
        assert csrf is not None
        ok = await editor.post("/api/v1/faqs", json=_entry(), headers={"X-CSRF-Token": csrf.group(1)})
        assert ok.status_code == 201


def _inbox(args: list[str], url: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "INBOX_DATABASE_URL": url, "INBOX_SECRET_KEY": "test-secret-key"}
    return subprocess.run([str(INBOX), *args], capture_output=True, text=True, env=env, cwd=cwd,
                          timeout=60)


def test_import_reports_bad_lines_with_numbers_and_export_round_trips(
    sqlite_url: str, tmp_path: Path
) -> None:
    csv_file = tmp_path / "faq.csv"
    csv_file.write_text(
        "question,alternates,answer,tags\n"
        "Do you sell gift cards?,Gift vouchers?|Can I buy a gift card,Yes - from $10.,gifts|cards\n"
        "Where are you?,,,\n"
        '"Do you ship\nto Mars?",,No.,\n'
        ",,An answer without a question,\n"
        "Hi {{ name }}?,,Hello {{ name }},\n"
        "Do you gift wrap?,,Yes for $3.,gifts\n",
        encoding="utf-8")
    result = _inbox(["faq", "import", str(csv_file)], sqlite_url, tmp_path)
    assert result.returncode == 1, result.stderr
    lines = result.stderr.strip().splitlines()
    assert lines[0] == "line 3: missing answer"
    assert lines[1] == "line 6: missing question"
    assert lines[2].startswith("line 7: answer: unknown template variable name")
    assert "imported 3 entries" in result.stdout

    json_file = tmp_path / "faq.json"
    json_file.write_text(json.dumps([
        {"id": "cards", "question": "Do you sell gift cards?", "alternates": [], "answer": "Yes.",
         "tags": []},
        {"question": "No answer"},
        "not an object",
    ]), encoding="utf-8")
    again = _inbox(["faq", "import", str(json_file)], sqlite_url, tmp_path)
    assert again.returncode == 1
    assert again.stderr.strip().splitlines() == ["item 2: missing answer", "item 3: not an object"]

    exported = _inbox(["faq", "export"], sqlite_url, tmp_path)
    assert exported.returncode == 0, exported.stderr
    rows = json.loads(exported.stdout)
    assert [r["question"] for r in rows] == ["Do you sell gift cards?", "Do you ship\nto Mars?",
                                             "Do you gift wrap?", "Do you sell gift cards?"]
    assert rows[0]["alternates"] == ["Gift vouchers?", "Can I buy a gift card"]
    assert rows[0]["tags"] == ["gifts", "cards"] and rows[3]["id"] == "cards"

    as_csv = _inbox(["faq", "export", "--format", "csv"], sqlite_url, tmp_path)
    assert as_csv.stdout.splitlines()[0] == \
        "id,question,alternates,answer,tags,answer_fallback,channels,enabled"
    (tmp_path / "back.csv").write_text(as_csv.stdout, encoding="utf-8")
    round_trip = _inbox(["faq", "import", str(tmp_path / "back.csv")], sqlite_url, tmp_path)
    assert round_trip.returncode == 0, round_trip.stderr
    assert "(0 new, 4 updated)" in round_trip.stdout
