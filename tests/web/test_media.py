"""Agents open every attachment through one route, whoever holds the bytes."""

from __future__ import annotations

import pytest

from inbox import pipeline
from inbox.agents import create_agent
from inbox.types import Attachment, Inbound
from tests.conftest import make_settings
from tests.fakes.graph_recorder import (
    TEST_ACCESS_TOKEN,
    TEST_APP_SECRET,
    TEST_PHONE_NUMBER_ID,
    TEST_VERIFY_TOKEN,
    GraphRecorder,
)
from tests.support.server import live_server

pytestmark = pytest.mark.e2e

JPEG = b"\xff\xd8\xff\xe0fake-jpeg-bytes"


def _inbound(pid: str, attachment: Attachment, *, channel: str = "whatsapp",
             provider: str = "meta") -> Inbound:
    return Inbound(channel=channel, provider=provider, provider_message_id=pid,
                   sender="+15550102030", sender_kind="phone", recipient="+15550783881",
                   text="see photo", attachments=[attachment])


async def test_whatsapp_media_id_and_stored_mail_attachment_download_for_agents(sqlite_url: str) -> None:
    with GraphRecorder() as graph:
        graph.add_media("MEDIA123", JPEG, "image/jpeg")
        settings = make_settings(sqlite_url, whatsapp_app_secret=TEST_APP_SECRET,
                                 whatsapp_verify_token=TEST_VERIFY_TOKEN,
                                 whatsapp_access_token=TEST_ACCESS_TOKEN,
                                 whatsapp_graph_base=graph.base_url,
                                 whatsapp_phone_number_id=TEST_PHONE_NUMBER_ID)
        async with live_server(settings) as srv:
            _agent, token = await create_agent(srv.rt, email="a@x.example", name="A", role="agent")
            wa = await pipeline.ingest(srv.rt, _inbound("wamid.media1", Attachment(
                content_type="image/jpeg", url="meta-media:MEDIA123", filename=None)))
            mail = await pipeline.ingest(srv.rt, Inbound(
                channel="email", provider="email", provider_message_id="<m1@x>", sender="k@example.com",
                sender_kind="email", text="invoice attached",
                attachments=[Attachment(content_type="application/pdf", filename="rechnung ü.pdf",
                                        data=b"%PDF-1.4 tiny")]))

            resp = await srv.client.get(f"/api/v1/messages/{wa.message_id}/attachments/0",
                                        headers=srv.auth(token))
            assert resp.status_code == 200
            assert resp.content == JPEG and resp.headers["content-type"] == "image/jpeg"
            assert resp.headers["content-security-policy"] == "sandbox"

            resp = await srv.client.get(f"/api/v1/messages/{mail.message_id}/attachments/0",
                                        headers=srv.auth(token))
            assert resp.status_code == 200 and resp.content == b"%PDF-1.4 tiny"
            assert "rechnung%20%C3%BC.pdf" in resp.headers["content-disposition"]

            missing = await srv.client.get(f"/api/v1/messages/{mail.message_id}/attachments/5",
                                           headers=srv.auth(token))
            assert missing.status_code == 404 and missing.json()["error"] == "not_found"
            anonymous = await srv.client.get(f"/api/v1/messages/{wa.message_id}/attachments/0")
            assert anonymous.status_code == 401


async def test_public_media_url_is_a_redirect_and_html_never_renders_as_ours(sqlite_url: str) -> None:
    async with live_server(make_settings(sqlite_url)) as srv:
        _agent, token = await create_agent(srv.rt, email="a@x.example", name="A", role="agent")
        pub = await pipeline.ingest(srv.rt, _inbound("SMmedia1", Attachment(
            content_type="image/png", url="https://media.example.org/p.png"), channel="sms",
            provider="twilio"))
        html = await pipeline.ingest(srv.rt, Inbound(
            channel="email", provider="email", provider_message_id="<m2@x>", sender="k@example.com",
            sender_kind="email", text="page", attachments=[Attachment(
                content_type="text/html", filename="x.html", data=b"<script>alert(1)</script>")]))
        resp = await srv.client.get(f"/api/v1/messages/{pub.message_id}/attachments/0",
                                    headers=srv.auth(token))
        assert resp.status_code == 302 and resp.headers["location"] == "https://media.example.org/p.png"
        resp = await srv.client.get(f"/api/v1/messages/{html.message_id}/attachments/0",
                                    headers=srv.auth(token))
        assert resp.headers["content-type"] == "application/octet-stream"
        assert resp.headers["content-disposition"].startswith("attachment;")
