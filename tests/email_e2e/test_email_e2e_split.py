"""An agent splits a customer's message off into a new conversation
(`POST /api/v1/messages/{id}/split`), and the customer's replies to it follow it."""

from __future__ import annotations

from email.utils import parseaddr

import pytest

from inbox.agents import create_agent
from inbox.models import Message
from tests.email_e2e.helpers import (
    SmtpSink,
    by_thread_id,
    eventually,
    mail,
    mail_settings,
    messages,
    post_mail,
)
from tests.support.server import live_server

pytestmark = pytest.mark.e2e


async def test_an_agent_splits_a_new_topic_off_into_its_own_conversation(
    database_url: str, relay: SmtpSink
) -> None:
    settings = mail_settings(database_url, smtp_host="127.0.0.1", smtp_port=relay.port,
                             smtp_starttls=False)
    async with live_server(settings) as srv:
        _agent, token = await create_agent(srv.rt, email="ann@shop.example", name="Ann",
                                           role="agent", password="agent-password")
        auth = srv.auth(token)
        for raw in (
            mail(sender="Kim <kim@example.com>", subject="Order 1001 missing", text="Where is it?",
                 message_id="<k1@example.com>"),
            # Same thread by its headers, but a new question inside it.
            mail(sender="kim@example.com", subject="Re: Order 1001 missing",
                 text="Also: can I change the address on order 1002?", message_id="<k2@example.com>",
                 in_reply_to="<k1@example.com>", references="<k1@example.com>"),
        ):
            assert (await post_mail(srv, raw)).status_code == 200
        first, second = await by_thread_id(srv.rt, "<k1@example.com>"), await by_thread_id(srv.rt, "<k2@example.com>")
        old = first.conversation_id
        assert second.conversation_id == old
        seq = max(e["seq"] for e in (await srv.client.get("/api/v1/events", headers=auth)).json()["items"])

        response = await srv.client.post(f"/api/v1/messages/{second.id}/split", headers=auth)
        assert response.status_code == 201, response.text
        new = response.json()
        assert new["id"] != old
        assert (new["contact_id"], new["channel"], new["customer_address"]) == (
            (await srv.client.get(f"/api/v1/conversations/{old}", headers=auth)).json()["conversation"]["contact_id"],
            "email", "kim@example.com")

        old_view = (await srv.client.get(f"/api/v1/conversations/{old}", headers=auth)).json()
        new_view = (await srv.client.get(f"/api/v1/conversations/{new['id']}", headers=auth)).json()
        assert [m["id"] for m in old_view["messages"] if not m["private"]] == [first.id]
        assert [m["id"] for m in new_view["messages"] if not m["private"]] == [second.id]
        assert any("split" in m["text"] for m in new_view["messages"] if m["private"])
        events = (await srv.client.get(f"/api/v1/events?since={seq}", headers=auth)).json()["items"]
        kinds = [(e["type"], e["conversation_id"]) for e in events]
        assert ("conversation.created", new["id"]) in kinds
        assert ("message.updated", new["id"]) in kinds
        assert ("conversation.updated", old) in kinds

        # The agent's answer there replies to the split-off message, on its own token.
        response = await srv.client.post(f"/api/v1/conversations/{new['id']}/messages", headers=auth,
                                         json={"text": "Sure, send us the new address."})
        assert response.status_code == 201, response.text
        await eventually(lambda: _received(relay), what="the reply in the new conversation")
        [sent] = relay.mails()
        assert str(sent["In-Reply-To"]) == "<k2@example.com>"
        token = parseaddr(str(sent["Reply-To"]))[1].split("@")[0].split("+", 1)[1]
        assert srv.rt.connectors["email"].conversation_from_token(token) == new["id"]  # type: ignore[attr-defined]

        # The customer answers the split-off message: the reply follows it.
        reply = mail(sender="kim@example.com", subject="Re: Order 1001 missing",
                     text="The new address is Main St 5.", message_id="<k3@example.com>",
                     in_reply_to="<k2@example.com>", references="<k1@example.com> <k2@example.com>")
        assert (await post_mail(srv, reply)).status_code == 200
        assert (await by_thread_id(srv.rt, "<k3@example.com>")).conversation_id == new["id"]

        # What cannot be split.
        assert (await srv.client.post("/api/v1/messages/999999/split", headers=auth)).status_code == 404
        only = await srv.client.post(f"/api/v1/messages/{first.id}/split", headers=auth)
        assert only.status_code == 409 and only.json()["reason"] == "only_message", only.text
        note = [m for m in await messages(srv.rt, Message.conversation_id == old) if m.private][0]
        assert (await srv.client.post(f"/api/v1/messages/{note.id}/split", headers=auth)).status_code == 400
        assert (await srv.client.post(f"/api/v1/messages/{second.id}/split")).status_code == 401


async def _received(relay: SmtpSink) -> bool:
    return bool(relay.received)
