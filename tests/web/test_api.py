"""REST API `/api/v1` on a real server: listing with filters and keyset pages, one
conversation with its messages, replies, notes, assignment, status, contacts, agents."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from sqlalchemy import event, func, select

from inbox import pipeline
from inbox.agents import create_agent
from inbox.models import OutboxRow
from inbox.types import Inbound, ThreadHints
from tests.inbox.fast_db import admin_token, agent_token, database_url, sqlite_template  # noqa: F401
from tests.support.server import LiveServer

pytestmark = pytest.mark.e2e

_counter = 0


def sms(text: str, *, sender: str, name: str | None = None, channel: str = "sms") -> Inbound:
    global _counter
    _counter += 1
    return Inbound(channel=channel, provider="twilio", provider_message_id=f"SMapi{_counter}",
                   sender=sender, sender_kind="phone", recipient="+15550009999", text=text,
                   display_name=name)


def mail(text: str, *, sender: str, name: str | None = None, subject: str = "Question") -> Inbound:
    global _counter
    _counter += 1
    mid = f"<api{_counter}@mail.example>"
    return Inbound(channel="email", provider="email", provider_message_id=mid, sender=sender,
                   sender_kind="email", recipient="support@shop.example", text=text,
                   display_name=name, thread=ThreadHints(message_id=mid, subject=subject))


def chat(text: str, *, visitor: str) -> Inbound:
    global _counter
    _counter += 1
    return Inbound(channel="webchat", provider="webchat", provider_message_id=f"{visitor}:{_counter}",
                   sender=visitor, sender_kind="webchat", recipient="webchat", text=text)


async def ingest(server: LiveServer, inbound: Inbound) -> int:
    return (await pipeline.ingest(server.rt, inbound)).conversation_id


class Api:
    """A tiny client: Bearer token, JSON in and out, status checked."""

    def __init__(self, server: LiveServer, token: str) -> None:
        self.server, self.headers = server, server.auth(token)

    async def get(self, path: str, expect: int = 200, **params: Any) -> Any:
        resp = await self.server.client.get(f"/api/v1{path}", params=params, headers=self.headers)
        assert resp.status_code == expect, resp.text
        return resp.json()

    async def post(self, path: str, body: Any = None, status: int = 200) -> Any:
        resp = await self.server.client.post(f"/api/v1{path}", json=body if body is not None else {},
                                             headers=self.headers)
        assert resp.status_code == status, resp.text
        return resp.json()

    async def ids(self, **params: Any) -> set[int]:
        return {c["id"] for c in (await self.get("/conversations", **params))["items"]}


@pytest.fixture
async def api(server: LiveServer, agent_token: str) -> Api:
    return Api(server, agent_token)


async def test_conversation_list_filters_by_status_channel_assignee_and_handler(
    server: LiveServer, api: Api
) -> None:
    by_sms = await ingest(server, sms("Where is my parcel?", sender="+15550102030", name="Maria Lopez"))
    by_mail = await ingest(server, mail("Exchange please", sender="jonas@mail.example", name="Jonas Becker"))
    by_chat = await ingest(server, chat("Do you ship to Canada?", visitor="v_api1"))
    me = await api.get("/me")

    await api.post(f"/conversations/{by_mail}/status", {"status": "resolved"})
    await api.post(f"/conversations/{by_sms}/assign", {"agent_id": "me"})

    assert await api.ids() == {by_sms, by_mail, by_chat}
    assert await api.ids(status="resolved") == {by_mail}
    assert await api.ids(status="open") == {by_sms, by_chat}
    assert await api.ids(channel="email") == {by_mail}
    assert await api.ids(channel="webchat") == {by_chat}
    assert await api.ids(assignee="me") == {by_sms}
    assert await api.ids(assignee=str(me["id"])) == {by_sms}
    assert await api.ids(assignee="none") == {by_mail, by_chat}
    assert await api.ids(handled_by="human") == {by_sms}  # assigning hands it to humans
    assert await api.ids(handled_by="bot") == {by_mail, by_chat}
    assert await api.ids(status="open", assignee="none", channel="webchat") == {by_chat}


async def test_conversation_search_matches_name_phone_email_and_message_text(
    server: LiveServer, api: Api
) -> None:
    maria = await ingest(server, sms("Where is my parcel?", sender="+15550102030", name="Maria Lopez"))
    jonas = await ingest(server, mail("The jacket is too small", sender="Jonas.Becker@Mail.example"))
    await ingest(server, chat("Do you ship to Canada?", visitor="v_api2"))

    assert await api.ids(q="maria") == {maria}
    assert await api.ids(q="LOPEZ") == {maria}
    assert await api.ids(q="+15550102030") == {maria}
    assert await api.ids(q="0102030") == {maria}
    assert await api.ids(q="jonas.becker@mail") == {jonas}
    assert await api.ids(q="jacket") == {jonas}
    assert await api.ids(q="parcel") == {maria}
    assert await api.ids(q="nothing like this") == set()


async def test_keyset_pages_walk_every_conversation_once_newest_first(
    server: LiveServer, api: Api
) -> None:
    created = [await ingest(server, sms(f"hello {i}", sender=f"+1555020{i:04d}")) for i in range(11)]
    seen: list[int] = []
    cursor: str | None = None
    pages = 0
    while True:
        params: dict[str, Any] = {"limit": 4}
        if cursor:
            params["cursor"] = cursor
        page = await api.get("/conversations", **params)
        pages += 1
        seen.extend(c["id"] for c in page["items"])
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert pages == 3
    assert len(seen) == len(set(seen)) == 11
    assert seen == list(reversed(created))  # newest activity first


async def test_activity_during_paging_neither_duplicates_nor_skips_untouched_ones(
    server: LiveServer, api: Api
) -> None:
    created = [await ingest(server, sms(f"hi {i}", sender=f"+1555030{i:04d}")) for i in range(6)]
    first = await api.get("/conversations", limit=3)
    # The oldest conversation gets a new message: it jumps to the top, above the cursor.
    await ingest(server, sms("me again", sender="+15550300000"))
    second = await api.get("/conversations", limit=3, cursor=first["next_cursor"])
    first_ids = [c["id"] for c in first["items"]]
    second_ids = [c["id"] for c in second["items"]]
    assert not set(first_ids) & set(second_ids)
    assert set(first_ids) | set(second_ids) | {created[0]} == set(created)


async def test_one_conversation_comes_with_its_contact_and_messages_in_order(
    server: LiveServer, api: Api
) -> None:
    cid = await ingest(server, sms("first", sender="(555) 010-2030", name="Maria Lopez"))
    await ingest(server, sms("second", sender="+15550102030"))
    data = await api.get(f"/conversations/{cid}")
    assert data["conversation"]["id"] == cid and data["conversation"]["channel"] == "sms"
    assert data["contact"]["name"] == "Maria Lopez"
    assert [(i["kind"], i["value"]) for i in data["contact"]["identities"]] == [("phone", "+15550102030")]
    assert [m["text"] for m in data["messages"]] == ["first", "second"]
    assert all(m["author"] == "customer" for m in data["messages"])
    older = await api.get(f"/conversations/{cid}/messages", before=data["messages"][1]["id"])
    assert [m["text"] for m in older["items"]] == ["first"]


async def test_reply_is_stored_queued_and_delivered_on_the_customers_channel(
    server: LiveServer, api: Api
) -> None:
    cid = await ingest(server, chat("Hello?", visitor="v_api3"))
    message = await api.post(f"/conversations/{cid}/messages", {"text": "Hi, how can I help?"}, status=201)
    assert message["author"] == "agent" and message["direction"] == "out"
    assert message["private"] is False and message["text"] == "Hi, how can I help?"
    me = await api.get("/me")
    assert message["author_agent_id"] == me["id"]
    # The dispatcher sends it (web chat acknowledges at once).
    for _ in range(100):
        [stored] = [m for m in (await api.get(f"/conversations/{cid}"))["messages"] if m["id"] == message["id"]]
        if stored["delivery_status"] == "sent":
            break
        await asyncio.sleep(0.05)
    assert stored["delivery_status"] == "sent"
    conv = (await api.get(f"/conversations/{cid}"))["conversation"]
    assert conv["handled_by"] == "human" and conv["assignee_id"] == me["id"]


async def test_reply_on_a_channel_this_server_cannot_send_is_a_conflict(
    server: LiveServer, api: Api
) -> None:
    cid = await ingest(server, sms("Hi", sender="+15550102030"))  # no Twilio configured here
    error = await api.post(f"/conversations/{cid}/messages", {"text": "Hello"}, status=409)
    assert error["error"] == "conflict" and error["reason"] == "channel_not_configured"


async def test_private_notes_are_stored_but_never_queued(server: LiveServer, api: Api) -> None:
    cid = await ingest(server, chat("Hello?", visitor="v_api4"))
    note = await api.post(f"/conversations/{cid}/notes", {"text": "VIP, be nice"}, status=201)
    flagged = await api.post(f"/conversations/{cid}/messages", {"text": "also private", "private": True},
                             status=201)
    assert note["private"] is True and flagged["private"] is True
    assert note["delivery_status"] is None
    async with server.rt.sessions() as session:
        queued = (await session.exec(select(func.count()).select_from(OutboxRow))).scalar()  # type: ignore[call-overload]
    assert queued == 0
    texts = [m["text"] for m in (await api.get(f"/conversations/{cid}"))["messages"]]
    assert texts == ["Hello?", "VIP, be nice", "also private"]


async def test_assign_status_and_take_over_change_the_conversation(
    server: LiveServer, api: Api, admin_token: str
) -> None:
    cid = await ingest(server, sms("Hi", sender="+15550102030"))
    me = await api.get("/me")
    admin = Api(server, admin_token)
    admin_id = (await admin.get("/me"))["id"]

    assert (await api.post(f"/conversations/{cid}/assign", {"agent_id": admin_id}))["assignee_id"] == admin_id
    assert (await api.post(f"/conversations/{cid}/assign", {"agent_id": None}))["assignee_id"] is None
    missing = await api.post(f"/conversations/{cid}/assign", {"agent_id": 999_999}, status=404)
    assert missing["error"] == "not_found"

    taken = await api.post(f"/conversations/{cid}/take_over")
    assert taken["handled_by"] == "human" and taken["assignee_id"] == me["id"]

    snoozed = await api.post(f"/conversations/{cid}/status",
                             {"status": "snoozed", "snoozed_until": "2099-01-01T09:00:00Z"})
    assert snoozed["status"] == "snoozed" and snoozed["snoozed_until"].startswith("2099-01-01T09:00:00")
    resolved = await api.post(f"/conversations/{cid}/status", {"status": "resolved"})
    assert resolved["status"] == "resolved" and resolved["handled_by"] == "bot"
    await api.post(f"/conversations/{cid}/status", {"status": "snoozed"}, status=400)
    await api.post(f"/conversations/{cid}/status", {"status": "closed"}, status=400)

    # Each change left a system note for the team.
    notes = [m["text"] for m in (await api.get(f"/conversations/{cid}"))["messages"] if m["author"] == "system"]
    assert len(notes) == 5 and all(m for m in notes)


async def test_mark_read_clears_the_unread_count(server: LiveServer, api: Api) -> None:
    cid = await ingest(server, sms("one", sender="+15550102030"))
    await ingest(server, sms("two", sender="+15550102030"))
    assert (await api.get(f"/conversations/{cid}"))["conversation"]["unread_count"] == 2
    await api.post(f"/conversations/{cid}/read")
    assert (await api.get(f"/conversations/{cid}"))["conversation"]["unread_count"] == 0


async def test_contacts_list_and_detail_show_identities_and_conversations(
    server: LiveServer, api: Api
) -> None:
    sms_conv = await ingest(server, sms("by sms", sender="+15550102030", name="Maria Lopez"))
    wa_conv = await ingest(server, sms("by whatsapp", sender="whatsapp:+15550102030", channel="whatsapp"))
    await ingest(server, mail("hello", sender="someone@else.example"))

    found = (await api.get("/contacts", q="maria"))["items"]
    assert [c["name"] for c in found] == ["Maria Lopez"]
    assert (await api.get("/contacts", q="0102030"))["items"][0]["id"] == found[0]["id"]
    assert len((await api.get("/contacts"))["items"]) == 2

    contact = await api.get(f"/contacts/{found[0]['id']}")
    assert [(i["kind"], i["value"], i["opted_out"]) for i in contact["identities"]] == [
        ("phone", "+15550102030", False)]
    assert {c["id"] for c in contact["conversations"]} == {sms_conv, wa_conv}
    assert {c["channel"] for c in contact["conversations"]} == {"sms", "whatsapp"}
    await api.get("/contacts/999999", expect=404)


async def test_only_admins_create_agents_and_the_new_token_works(
    server: LiveServer, api: Api, admin_token: str
) -> None:
    body = {"email": "New.Agent@Test.example", "name": "New Agent", "role": "agent"}
    refused = await api.post("/agents", body, status=403)
    assert refused["error"] == "forbidden"

    admin = Api(server, admin_token)
    created = await admin.post("/agents", {**body, "password": "long-enough-pw"}, status=201)
    assert created["agent"]["email"] == "new.agent@test.example"
    assert created["agent"]["role"] == "agent" and "password_hash" not in created["agent"]
    assert (await Api(server, created["token"]).get("/me"))["email"] == "new.agent@test.example"

    duplicate = await admin.post("/agents", body, status=409)
    assert duplicate["error"] == "conflict"
    await admin.post("/agents", {**body, "email": "x@test.example", "role": "root"}, status=400)
    await admin.post("/agents", {**body, "email": "y@test.example", "password": "short"}, status=400)

    listed = {a["email"] for a in (await api.get("/agents"))["items"]}
    assert listed == {"agent@test.example", "admin@test.example", "new.agent@test.example"}


async def test_events_endpoint_replays_the_log_after_a_seq(server: LiveServer, api: Api) -> None:
    result = await pipeline.ingest(server.rt, sms("hello", sender="+15550102030"))
    first_seq = result.events[0].seq
    await pipeline.ingest(server.rt, sms("again", sender="+15550102030"))
    items = (await api.get("/events", since=first_seq))["items"]
    assert [e["type"] for e in items] == ["message.created", "message.created"]
    assert [e["message"]["text"] for e in items] == ["hello", "again"]


async def test_faq_editor_can_read_who_they_are_but_not_conversations(server: LiveServer) -> None:
    _agent, token = await create_agent(server.rt, email="faq@test.example", name="Faq", role="faq_editor")
    editor = Api(server, token)
    assert (await editor.get("/me"))["role"] == "faq_editor"
    error = await editor.get("/conversations", expect=403)
    assert error["error"] == "forbidden"


async def test_search_treats_percent_and_underscore_as_plain_characters(
    server: LiveServer, api: Api
) -> None:
    cotton = await ingest(server, sms("Is it 100% cotton?", sender="+15550102030"))
    await ingest(server, sms("Is it 1000 cotton?", sender="+15550102031"))
    sku = await ingest(server, sms("SKU red_shirt please", sender="+15550102032"))
    await ingest(server, sms("SKU redXshirt please", sender="+15550102033"))
    assert await api.ids(q="100%") == {cotton}
    assert await api.ids(q="red_shirt") == {sku}
    assert await api.ids(q="%") == {cotton}
    assert (await api.get("/contacts", q="%"))["items"] == []


async def test_list_pages_and_messages_read_through_indexes_not_table_scans(
    server: LiveServer, api: Api
) -> None:
    # At 100,000 conversations and 1,000,000 messages (bench/scale_bench.py, scenario E)
    # these pages stay fast only while no statement scans a whole table: the plans say so.
    created = [await ingest(server, sms(f"plan {i}", sender=f"+1555040{i:04d}")) for i in range(6)]
    statements: list[tuple[str, Any]] = []

    def record(_conn: Any, _cursor: Any, statement: str, parameters: Any, *_args: Any) -> None:
        if statement.lstrip().upper().startswith("SELECT"):
            statements.append((statement, parameters))

    engine = server.rt.engine.sync_engine
    event.listen(engine, "before_cursor_execute", record)
    try:
        first = await api.get("/conversations", limit=2)
        await api.get("/conversations", limit=2, cursor=first["next_cursor"])
        await api.get("/conversations", limit=2, status="open")
        await api.get(f"/conversations/{created[0]}/messages", limit=2)
    finally:
        event.remove(engine, "before_cursor_execute", record)
    assert statements
    sqlite = engine.dialect.name == "sqlite"
    async with server.rt.engine.connect() as conn:
        if not sqlite:
            # Six rows are cheaper to scan; ask what the indexes can serve.
            await conn.exec_driver_sql("SET enable_seqscan = off")
        for statement, parameters in statements:
            prefix = "EXPLAIN QUERY PLAN " if sqlite else "EXPLAIN "
            rows = (await conn.exec_driver_sql(prefix + statement, parameters)).all()
            for row in rows:
                detail = str(row[-1])
                if sqlite:
                    scan = detail.startswith("SCAN ") and " USING " not in detail
                    table = detail.split()[1] if scan else ""
                else:
                    table = detail.split("Seq Scan on ")[1].split()[0] if "Seq Scan on " in detail else ""
                assert table not in ("conversation", "message"), (detail, statement)
