"""The WhatsApp Cloud API connector against recorded real payloads and a fake Graph API.

Fixtures come from ../shared/fixtures (tests.conftest.FIXTURES)/whatsapp-cloud (INBOX_SHARED_FIXTURES overrides
the folder); every body is signed here with the app secret and sent byte-for-byte.
"""

from __future__ import annotations


import json
import os
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from connectors.whatsapp import WhatsAppCloudConnector, build
from inbox.errors import Conflict, NotFound, SendFailed, SignatureInvalid, UnsupportedPayload
from inbox.settings import Settings
from inbox.types import (
    FLAG_AUTO_REPLY,
    FLAG_BROKEN,
    Attachment,
    Outbound,
    TemplateRef,
    ThreadHints,
    WebhookRequest,
)
from tests.fakes.fixtures import graph_recorder  # noqa: F401  (also a plugin in tests/conftest.py)
from tests.fakes.graph_recorder import (
    TEST_ACCESS_TOKEN,
    TEST_APP_SECRET,
    TEST_PHONE_NUMBER_ID,
    TEST_VERIFY_TOKEN,
    GraphRecorder,
    meta_signature,
    text_webhook,
)

from tests.conftest import FIXTURES as SHARED_FIXTURES  # noqa: E402

FIXTURES = SHARED_FIXTURES / "whatsapp-cloud"
pytestmark = pytest.mark.skipif(not FIXTURES.is_dir(), reason=f"no fixtures at {FIXTURES}")

PUBLIC_URL = "https://inbox.example.com/webhooks/whatsapp"


def load(relative: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((FIXTURES / relative).read_text(encoding="utf-8"))
    return data


def fixture_names(*folders: str) -> list[str]:
    if not FIXTURES.is_dir():
        return []
    return sorted(f"{folder}/{p.name}" for folder in folders for p in (FIXTURES / folder).glob("*.json"))


def connector(**overrides: Any) -> WhatsAppCloudConnector:
    options: dict[str, Any] = dict(app_secret=TEST_APP_SECRET, verify_token=TEST_VERIFY_TOKEN,
                                   access_token=TEST_ACCESS_TOKEN)
    return WhatsAppCloudConnector(**{**options, **overrides})


def signed(body: bytes | dict[str, Any], secret: str = TEST_APP_SECRET) -> WebhookRequest:
    raw = body if isinstance(body, bytes) else json.dumps(body, ensure_ascii=False).encode()
    headers = {"content-type": "application/json", "x-hub-signature-256": meta_signature(raw, secret)}
    return WebhookRequest("POST", PUBLIC_URL, headers, raw)


# ----------------------------------------------------------------- verification


def test_real_pywa_signature_vector_verifies() -> None:
    vector = load("signature/x-hub-signature-256_vector_pywa.json")
    body = (FIXTURES / "signature/x-hub-signature-256_vector_pywa.body.json").read_bytes()
    assert body == vector["raw_body"].encode()
    headers = {k.lower(): v for k, v in vector["headers"].items()}
    meta = connector(app_secret=vector["app_secret"])
    meta.verify(WebhookRequest("POST", PUBLIC_URL, headers, body))
    [inbound] = meta.parse(WebhookRequest("POST", PUBLIC_URL, headers, body))
    assert inbound.text == "Hey there! I am using PyWa."


def test_changed_byte_missing_header_wrong_secret_or_scheme_fail() -> None:
    vector = load("signature/x-hub-signature-256_vector_pywa.json")
    body = vector["raw_body"].encode()
    header = vector["headers"]["X-Hub-Signature-256"]
    meta = connector(app_secret=vector["app_secret"])
    for index in (0, len(body) // 2, len(body) - 1):
        changed = body[:index] + bytes([body[index] ^ 0x01]) + body[index + 1:]
        with pytest.raises(SignatureInvalid):
            meta.verify(WebhookRequest("POST", PUBLIC_URL, {"x-hub-signature-256": header}, changed))
    with pytest.raises(SignatureInvalid, match="missing"):
        meta.verify(WebhookRequest("POST", PUBLIC_URL, {}, body))
    with pytest.raises(SignatureInvalid):
        connector().verify(WebhookRequest("POST", PUBLIC_URL, {"x-hub-signature-256": header}, body))
    with pytest.raises(SignatureInvalid):
        meta.verify(WebhookRequest("POST", PUBLIC_URL, {"x-hub-signature-256": "sha1=" + header[7:]}, body))
    meta.verify(WebhookRequest("POST", PUBLIC_URL, {"x-hub-signature-256": header.upper().replace("SHA256", "sha256")}, body))


def test_unconfigured_app_secret_refuses_everything() -> None:
    request = signed(text_webhook("hi"), secret="")
    with pytest.raises(SignatureInvalid, match="not configured"):
        connector(app_secret="").verify(request)


def test_verification_challenge_cases() -> None:
    data = load("verification/get_hub_challenge_cases_netflie.json")
    meta = connector(verify_token=data["configured_verify_token"])
    for case in data["cases"]:
        if case["expected_status"] == 200:
            assert meta.verify_challenge(case["params"]) == case["expected_body"]
        else:
            with pytest.raises(SignatureInvalid):
                meta.verify_challenge(case["params"])


@pytest.mark.parametrize(
    "query",
    [{"hub.mode": "unsubscribe", "hub.verify_token": TEST_VERIFY_TOKEN, "hub.challenge": "1"},
     {"hub.verify_token": TEST_VERIFY_TOKEN, "hub.challenge": "1"},
     {"hub.mode": "subscribe", "hub.challenge": "1"},
     {"hub.mode": "subscribe", "hub.verify_token": TEST_VERIFY_TOKEN}],
)
def test_challenge_needs_subscribe_mode_token_and_challenge(query: dict[str, str]) -> None:
    with pytest.raises(SignatureInvalid):
        connector().verify_challenge(query)


def test_challenge_refused_when_no_verify_token_is_configured() -> None:
    with pytest.raises(SignatureInvalid):
        connector(verify_token="").verify_challenge({"hub.mode": "subscribe", "hub.verify_token": "", "hub.challenge": "1"})


# ----------------------------------------------------------------- every fixture

# What each fixture must yield, restating its `expected` in our fields. Keys: the Inbound
# attribute, or "meta.<key>" for an entry of Inbound.meta; "flags" compares exactly.
MESSAGE_EXPECTED: dict[str, dict[str, Any]] = {
    "messages/interactive_button_button_pywa.json": {
        "text": "title", "meta.button": {"id": "callback_data", "title": "title"},
        "meta.reply_to_provider_id": "wamid.xyzxyz"},
    "messages/interactive_button_quick_reply_pywa.json": {
        "text": "title", "meta.button": {"text": "title", "payload": "callback_data"},
        "meta.reply_to_provider_id": "wamid.xyzxyz=="},
    "messages/interactive_button_quick_reply_without_context_pywa.json": {
        "text": "title", "meta.button": {"text": "title", "payload": "callback_data"},
        "meta.reply_to_provider_id": None},
    "messages/interactive_list_callback_pywa.json": {
        "text": "title", "meta.list_reply": {"id": "callback_data", "title": "title"}},
    "messages/interactive_list_description_pywa.json": {
        "meta.list_reply": {"id": "callback_data", "title": "title", "description": "description"}},
    "messages/message_animated_sticker_pywa.json": {
        "attachments": [("image/webp", "meta-media:1234567890987654321", None)],
        "meta.media.animated": True},
    "messages/message_audio_pywa.json": {
        "attachments": [("audio/ogg; codecs=opus", "meta-media:1234567890987654321", None)],
        "meta.media.voice": None, "meta.forwarded": True},
    "messages/message_chosen_location_pywa.json": {
        "meta.location": {"latitude": 37.4611978, "longitude": -122.2164385, "name": "Facebook HQ",
                          "address": "1 Hacker Way, Menlo Park, CA 94025",
                          "url": "https://maps.google.com/?cid=2000000000000000000"},
        "text~": "Facebook HQ, 1 Hacker Way"},
    "messages/message_contacts_pywa.json": {
        "text~": "Chandler Bing: +1 555-555-5555 (CELL)", "meta.contacts#": 3},
    "messages/message_current_location_pywa.json": {
        "meta.location": {"latitude": 12.25089, "longitude": 43.90539}, "text~": "(12.25089, 43.90539)"},
    "messages/message_document_pywa.json": {
        "text": "caption",
        "attachments": [("application/pdf", "meta-media:1234567890987654321", "filename.pdf")],
        "meta.forwarded": True},
    "messages/message_forwarded_many_times_pywa.json": {
        "text": "text forwarded many times", "meta.forwarded_many_times": True},
    "messages/message_forwarded_pywa.json": {
        "text": "forwarded text", "meta.forwarded": True, "meta.forwarded_many_times": None},
    "messages/message_image_pywa.json": {
        "text": "", "attachments": [("image/jpeg", "meta-media:65463453", None)]},
    "messages/message_interactive_message_with_err_pywa.json": {
        "flags": {FLAG_BROKEN}, "meta.errors#": 1, "meta.reply_to_provider_id": "wamid.gvwegfretge==",
        "text~": "could not be read"},
    "messages/message_media_with_url_pywa.json": {
        "attachments": [("image/jpeg", "meta-media:65463453", None)],
        "meta.media.url~": "https://lookaside.fbsbx.com/"},
    "messages/message_order_pywa.json": {
        "text~": "3 × HAMBURGER (30 ILS)", "meta.order.catalog_id": "354160437058781"},
    "messages/message_reaction_pywa.json": {
        "text": "reacted 😮", "meta.reaction": {"emoji": "😮", "message_id": "wamid.yzxyzx="},
        "provider_message_id": "wamid.xyzxyz"},
    "messages/message_referral_pywa.json": {
        "text": "BODY", "meta.referral.ctwa_clid": "CTWA_CLID", "meta.referral.source_type": "ad or post"},
    "messages/message_reply_pywa.json": {
        "text": "replied text", "meta.reply_to_provider_id": "wamid.xyzxyz=="},
    "messages/message_static_sticker_pywa.json": {"meta.media.animated": False},
    "messages/message_text_contact_without_profile_netflie_issue.json": {
        "text": "12345 is your Instagram code. Don't share it.", "display_name": None,
        "sender": "+447710173736", "recipient": "******", "meta.phone_number_id": "**********"},
    "messages/message_text_pywa.json": {
        "text": "Body Text", "provider_message_id": "wamid.xyzxyz", "sender": "+972987654321",
        "sender_kind": "phone", "display_name": "Test Name", "recipient": "+972123456789",
        "meta.phone_number_id": "1122334455667", "meta.wa_id": "972987654321",
        "meta.whatsapp_user_id": "US.13491208655302741918",
        "meta.parent_whatsapp_user_id": "US.ENT.11815799212886844830",
        "received_at": datetime.fromtimestamp(1697043223, UTC), "flags": set()},
    "messages/message_unreaction_empty_pywa.json": {
        "text": "removed a reaction", "meta.reaction": {"emoji": None, "message_id": "wamid.yzxyzx="}},
    "messages/message_unreaction_no_emoji_pywa.json": {
        "text": "removed a reaction", "meta.reaction": {"emoji": None, "message_id": "wamid.yzxyzx="}},
    "messages/message_unsupported_pywa.json": {
        "text": "[Unsupported WhatsApp message: unsupported]", "flags": {FLAG_BROKEN}, "meta.errors#": 1},
    "messages/message_unsupported_with_type_pywa.json": {
        "text": "[Unsupported WhatsApp message: pool]", "flags": {FLAG_BROKEN}},
    "messages/message_video_pywa.json": {
        "text": "caption", "attachments": [("video/mp4", "meta-media:765756756", None)]},
    "messages/message_voice_pywa.json": {"meta.media.voice": True},
    "system/deleted_message_revoke_pywa.json": {
        "meta.delete_of": "<ORIGINAL_WHATSAPP_MESSAGE_ID>", "text~": "deleted"},
    "system/edited_message_image_pywa.json": {
        "meta.edit_of": "wamid.HBgLMTQxMjU1NTA4MjkVAgASGBQzQUNCNjk5RDUwNUZGMUZEM0VBRAA=",
        "meta.edited_type": "image", "text": "Updated image caption",
        "attachments": [("image/jpeg", "meta-media:1234567890", None)], "sender": "+16505551234"},
    "system/system_identity_change_pywa.json": {
        "meta.system.type": "customer_identity_changed", "flags": {FLAG_AUTO_REPLY},
        "text~": "User identity changed", "meta.identity.acknowledged": True},
    "system/system_phone_number_change_pywa.json": {
        "meta.system.type": "user_changed_number", "sender": "+972987654321",
        "meta.system.new_sender": "+972912345678", "flags": {FLAG_AUTO_REPLY},
        "display_name": None},
}

STATUS_EXPECTED: dict[str, dict[str, Any]] = {
    "statuses/status_delivered_pywa.json": {"status": "delivered", "recipient": "+972987654321",
                                            "at": datetime.fromtimestamp(1698266945, UTC)},
    "statuses/status_failed_pywa.json": {
        "status": "failed", "error_code": "130472", "error_text": "User's number is part of an experiment"},
    "statuses/status_group_pywa.json": {"status": "read", "recipient": "fowefinoewcnw"},
    "statuses/status_played_pywa.json": {"status": "read"},
    "statuses/status_read_pywa.json": {"status": "read"},
    "statuses/status_sent_pywa.json": {"status": "sent", "error_code": None},
    "statuses/status_with_tracker_pywa.json": {"status": "sent"},
}


def test_every_fixture_has_a_stated_expectation() -> None:
    assert set(fixture_names("messages", "system")) == set(MESSAGE_EXPECTED)
    assert set(fixture_names("statuses")) == set(STATUS_EXPECTED)


def lookup(inbound: Any, key: str) -> Any:
    value: Any
    if not key.startswith("meta."):
        value = getattr(inbound, key)
        if key == "attachments":
            return [(a.content_type, a.url, a.filename) for a in value]
        return set(value) if key == "flags" else value
    value = inbound.meta
    for part in key.split(".")[1:]:
        value = value.get(part) if isinstance(value, dict) else None
    return value


@pytest.mark.parametrize("name", fixture_names("messages", "system", "statuses"))
def test_fixture_parses_to_what_it_states_and_never_raises_anything_else(name: str) -> None:
    fixture = load(name)
    request = signed(fixture["body"])
    meta = connector()
    meta.verify(request)
    inbounds, updates = meta.parse(request), meta.parse_status(request)
    if name.startswith("statuses/"):
        assert inbounds == []
        [update] = updates
        status = fixture["body"]["entry"][0]["changes"][0]["value"]["statuses"][0]
        assert (update.provider_message_id, update.channel, update.provider) == (status["id"], "whatsapp", "meta")
        for field, value in STATUS_EXPECTED[name].items():
            assert getattr(update, field) == value, field
        return
    assert updates == []
    [inbound] = inbounds
    assert (inbound.channel, inbound.provider) == ("whatsapp", "meta")
    json.dumps(inbound.meta), json.dumps(inbound.raw)  # JSON-safe
    assert inbound.raw["message"]["id"] == inbound.provider_message_id
    for key, value in MESSAGE_EXPECTED[name].items():
        if key.endswith("~"):
            assert value in lookup(inbound, key[:-1]), key
        elif key.endswith("#"):
            assert len(lookup(inbound, key[:-1])) == value, key
        else:
            assert lookup(inbound, key) == value, key


def test_media_meta_keeps_id_mime_sha_caption_and_filename() -> None:
    [inbound] = connector().parse(signed(load("messages/message_document_pywa.json")["body"]))
    assert inbound.meta["media"] == {
        "kind": "document", "id": "1234567890987654321", "mime_type": "application/pdf",
        "sha256": "grwfwe/ZPx0wAbdfbdeFUNItPZ0RylL8gGUvdt3YFqc18SY=", "caption": "caption",
        "filename": "filename.pdf"}


def test_bsuid_only_sender_is_a_whatsapp_user() -> None:
    body = text_webhook("hi")
    value = body["entry"][0]["changes"][0]["value"]
    value["contacts"] = [{"profile": {"name": "Ana", "username": "ana"}, "user_id": "US.777"}]
    value["messages"][0].pop("from")
    value["messages"][0]["from_user_id"] = "US.777"
    [inbound] = connector().parse(signed(body))
    assert (inbound.sender, inbound.sender_kind, inbound.display_name) == ("US.777", "whatsapp_user", "Ana")
    assert inbound.meta["username"] == "ana"


def test_several_messages_and_entries_each_become_an_inbound() -> None:
    body = text_webhook("one", message_id="wamid.1")
    second = text_webhook("two", message_id="wamid.2")["entry"][0]
    body["entry"].append(second)
    body["entry"][0]["changes"][0]["value"]["messages"].append(
        {"from": "15551234567", "id": "wamid.3", "timestamp": "1", "type": "text", "text": {"body": "three"}})
    assert [i.text for i in connector().parse(signed(body))] == ["one", "three", "two"]


@pytest.mark.parametrize(
    "message",
    [{"from": "1555", "id": "wamid.a", "type": "image", "image": "not a dict"},
     {"from": "1555", "id": "wamid.b", "type": "interactive", "interactive": {"type": "nfm_reply",
      "nfm_reply": {"response_json": "{not json", "name": "flow"}}},
     {"from": "1555", "id": "wamid.c", "type": "contacts", "contacts": "nope"},
     {"from": "1555", "id": "wamid.d", "type": "order", "order": {"product_items": [None, {}]}},
     {"from": "1555", "id": "wamid.e", "type": "request_welcome"},
     {"from": "1555", "id": "wamid.f", "timestamp": "not a time", "type": "text", "text": None},
     {"from": "1555", "id": "wamid.g", "type": "edit", "edit": None},
     {"id": "wamid.h", "type": "text", "text": {"body": "no sender at all"}}],
)
def test_odd_messages_become_readable_inbounds_never_crashes(message: dict[str, Any]) -> None:
    body = text_webhook("x")
    body["entry"][0]["changes"][0]["value"]["messages"] = [message]
    [inbound] = connector().parse(signed(body))
    assert inbound.provider_message_id == message["id"]
    assert isinstance(inbound.text, str)


def test_messages_without_id_are_skipped_and_other_fields_ignored() -> None:
    body = text_webhook("x")
    body["entry"][0]["changes"][0]["value"]["messages"][0].pop("id")
    body["entry"].append({"id": "1", "changes": [{"field": "account_update", "value": {"event": "X"}}]})
    assert connector().parse(signed(body)) == []
    assert connector().parse(signed({"object": "page", "entry": []})) == []


@pytest.mark.parametrize("raw", [b"not json", b"[]", b'{"object": "whatsapp_business_account"}', b"\xff"])
def test_bodies_that_are_not_webhooks_are_unsupported(raw: bytes) -> None:
    with pytest.raises(UnsupportedPayload):
        connector().parse(signed(raw))
    with pytest.raises(UnsupportedPayload):
        connector().parse_status(signed(raw))


def test_parse_learns_which_phone_number_id_answers_for_a_display_number() -> None:
    meta = connector()
    meta.parse(signed(load("messages/message_text_pywa.json")["body"]))
    assert meta.phone_number_id_for("+972123456789") == "1122334455667"


# ----------------------------------------------------------------------- send


@pytest.fixture
async def meta(graph_recorder: GraphRecorder) -> AsyncIterator[WhatsAppCloudConnector]:
    conn = connector(graph_base=graph_recorder.base_url, phone_number_id=TEST_PHONE_NUMBER_ID)
    yield conn
    await conn.aclose()


def outbound(**fields: Any) -> Outbound:
    base: dict[str, Any] = dict(message_id=7, conversation_id=3, channel="whatsapp", provider="meta",
                                to="+972987654321", from_address=None, text="hello")
    return Outbound(**{**base, **fields})


async def test_text_send_posts_to_the_phone_number_id_with_bearer_token(
    meta: WhatsAppCloudConnector, graph_recorder: GraphRecorder
) -> None:
    result = await meta.send(outbound(idempotency_key="agent:7"))
    [request] = graph_recorder.requests
    assert request.path == f"/v21.0/{TEST_PHONE_NUMBER_ID}/messages"
    assert request.headers["authorization"] == f"Bearer {TEST_ACCESS_TOKEN}"
    assert request.json == {
        "messaging_product": "whatsapp", "recipient_type": "individual", "to": "972987654321",
        "type": "text", "text": {"preview_url": False, "body": "hello"},
        "biz_opaque_callback_data": "agent:7"}
    assert result.provider_message_id == graph_recorder.messages[0]["_wamid"]
    assert result.provider_message_id.startswith("wamid.")
    assert result.status == "queued"


async def test_reply_leaves_from_the_number_the_customer_wrote_to(
    graph_recorder: GraphRecorder,
) -> None:
    conn = connector(graph_base=graph_recorder.base_url)  # no default phone_number_id
    try:
        [inbound] = conn.parse(signed(load("messages/message_text_pywa.json")["body"]))
        await conn.send(outbound(from_address=inbound.recipient, to=inbound.sender))
        await conn.send(outbound(from_address="106540352242922"))
        with pytest.raises(SendFailed, match="phone_number_id"):
            await conn.send(outbound(from_address="+15550000000"))
    finally:
        await conn.aclose()
    assert [r.path for r in graph_recorder.requests] == [
        "/v21.0/1122334455667/messages", "/v21.0/106540352242922/messages"]


async def test_media_by_link_by_meta_id_and_by_upload(
    meta: WhatsAppCloudConnector, graph_recorder: GraphRecorder
) -> None:
    await meta.send(outbound(text="see attached", attachments=[
        Attachment("application/pdf", filename="invoice.pdf", url="https://cdn.example/i.pdf"),
        Attachment("image/jpeg", url="meta-media:65463453"),
        Attachment("audio/ogg", filename="note.ogg", data=b"OggS..."),
    ]))
    sent = graph_recorder.messages
    assert [m["type"] for m in sent] == ["document", "image", "audio"]
    assert sent[0]["document"] == {"link": "https://cdn.example/i.pdf", "filename": "invoice.pdf",
                                   "caption": "see attached"}
    assert sent[1]["image"] == {"id": "65463453"}
    [(media_id, upload)] = graph_recorder.uploads.items()
    assert sent[2]["audio"] == {"id": media_id}
    assert upload == (b"OggS...", "audio/ogg", "note.ogg")


async def test_text_goes_first_when_no_attachment_can_carry_a_caption(
    meta: WhatsAppCloudConnector, graph_recorder: GraphRecorder
) -> None:
    await meta.send(outbound(text="listen", attachments=[Attachment("audio/mpeg", url="https://x/a.mp3")]))
    assert [m["type"] for m in graph_recorder.messages] == ["text", "audio"]


async def test_template_send_with_positional_and_named_variables(
    meta: WhatsAppCloudConnector, graph_recorder: GraphRecorder
) -> None:
    await meta.send(outbound(text="", template=TemplateRef(
        name="order_update", language="pt_BR", variables={"2": "#1042", "1": "Ana"})))
    await meta.send(outbound(text="", template=TemplateRef(name="hello_world")))
    await meta.send(outbound(text="", template=TemplateRef(name="named", variables={"first_name": "Ana"})))
    first, second, third = (m["template"] for m in graph_recorder.messages)
    assert first == {"name": "order_update", "language": {"code": "pt_BR"}, "components": [
        {"type": "body", "parameters": [{"type": "text", "text": "Ana"}, {"type": "text", "text": "#1042"}]}]}
    assert second == {"name": "hello_world", "language": {"code": "en_US"}}
    assert third["components"][0]["parameters"] == [
        {"type": "text", "parameter_name": "first_name", "text": "Ana"}]


async def test_reply_context_is_sent_when_the_outbound_names_a_wamid(
    meta: WhatsAppCloudConnector, graph_recorder: GraphRecorder
) -> None:
    await meta.send(outbound(thread=ThreadHints(in_reply_to="wamid.abc")))
    assert graph_recorder.messages[0]["context"] == {"message_id": "wamid.abc"}


async def test_rate_limit_then_success_counts_exactly_the_calls(
    meta: WhatsAppCloudConnector, graph_recorder: GraphRecorder
) -> None:
    graph_recorder.fail_next(429, headers={"Retry-After": "3"})
    with pytest.raises(SendFailed) as caught:
        await meta.send(outbound())
    assert (caught.value.retryable, caught.value.retry_after, caught.value.error_code) == (True, 3.0, "130429")
    await meta.send(outbound())
    assert len(graph_recorder.requests) == 2
    assert len(graph_recorder.messages) == 1


@pytest.mark.parametrize(
    ("status", "code", "retryable"),
    [(400, 131047, False), (400, 131026, False), (400, 100, False), (401, 190, False),
     (400, 131056, True), (400, 130429, True), (500, 1, True), (503, 2, True)],
)
async def test_graph_errors_map_to_retryable_or_final_with_the_code(
    meta: WhatsAppCloudConnector, graph_recorder: GraphRecorder, status: int, code: int, retryable: bool
) -> None:
    graph_recorder.fail_next(status, code=code)
    with pytest.raises(SendFailed) as caught:
        await meta.send(outbound())
    assert (caught.value.retryable, caught.value.error_code, caught.value.opted_out) == (retryable, str(code), False)


async def test_network_errors_are_retryable(
    meta: WhatsAppCloudConnector, graph_recorder: GraphRecorder
) -> None:
    graph_recorder.disconnect_next()
    with pytest.raises(SendFailed) as caught:
        await meta.send(outbound())
    assert caught.value.retryable
    await meta.send(outbound())


async def test_a_part_failing_after_another_went_out_is_final(
    meta: WhatsAppCloudConnector, graph_recorder: GraphRecorder
) -> None:
    # fail_next queues any canned answer: a success, then a 503.
    graph_recorder.fail_next(200, {"messaging_product": "whatsapp", "messages": [{"id": "wamid.first"}]})
    graph_recorder.fail_next(503)
    with pytest.raises(SendFailed) as caught:
        await meta.send(outbound(text="", attachments=[
            Attachment("image/png", url="https://x/1.png"), Attachment("image/png", url="https://x/2.png")]))
    assert not caught.value.retryable
    assert "sent 1 of 2" in caught.value.detail
    assert len(graph_recorder.requests) == 2


async def test_wrong_access_token_is_final(graph_recorder: GraphRecorder) -> None:
    conn = connector(access_token="expired", graph_base=graph_recorder.base_url, phone_number_id="1" * 15)
    try:
        with pytest.raises(SendFailed) as caught:
            await conn.send(outbound())
        assert (caught.value.retryable, caught.value.error_code) == (False, "190")
    finally:
        await conn.aclose()


async def test_empty_or_too_long_messages_are_refused_before_any_call(
    meta: WhatsAppCloudConnector, graph_recorder: GraphRecorder
) -> None:
    with pytest.raises(SendFailed, match="empty"):
        await meta.send(outbound(text="  "))
    with pytest.raises(SendFailed, match="4096"):
        await meta.send(outbound(text="a" * 4097))
    assert graph_recorder.requests == []


async def test_own_http_client_is_used_when_given(graph_recorder: GraphRecorder) -> None:
    async with httpx.AsyncClient(headers={"X-Test": "1"}) as client:
        conn = connector(graph_base=graph_recorder.base_url, phone_number_id="1" * 15, http_client=client)
        await conn.send(outbound())
        await conn.aclose()  # must not close a client it does not own
        assert not client.is_closed
    assert graph_recorder.requests[0].headers["x-test"] == "1"


async def test_fetch_media_downloads_through_graph(
    meta: WhatsAppCloudConnector, graph_recorder: GraphRecorder
) -> None:
    graph_recorder.add_media("65463453", b"\xff\xd8jpeg", "image/jpeg")
    assert await meta.fetch_media("meta-media:65463453") == (b"\xff\xd8jpeg", "image/jpeg")
    with pytest.raises(NotFound):
        await meta.fetch_media("meta-media:404")


def test_free_form_replies_need_an_open_window() -> None:
    now = datetime(2025, 1, 2, tzinfo=UTC)
    with pytest.raises(Conflict):
        connector().check_reply(channel="whatsapp", last_customer_at=now - timedelta(hours=24, minutes=1), now=now)
    connector().check_reply(channel="whatsapp", last_customer_at=now - timedelta(hours=23, minutes=59), now=now)


def test_build_from_settings() -> None:
    assert build(Settings()) is None
    built = build(Settings(whatsapp_app_secret="s", whatsapp_access_token="t", whatsapp_verify_token="v",
                           whatsapp_graph_base="http://127.0.0.1:9/v21.0", whatsapp_phone_number_id="123"))
    assert built is not None
    assert (built.graph_base, built.phone_number_id) == ("http://127.0.0.1:9/v21.0", "123")
