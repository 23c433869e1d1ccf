"""Every shared Twilio and Meta fixture through the real webhook endpoints of a real server.

Each payload is re-signed for this server (the fixtures' own signatures are for their
upstream URLs and secrets) and must be stored as the right message (channel, sender
identity, text, attachments, display name), applied as a status, answered as a
verification, or refused with a clear 4xx JSON body; never a 500.

Adaptations, each because upstream used a placeholder: chatwoot's fixtures all reuse
the message SID "SMxx" (and pywa's "wamid.xyzxyz"), which our idempotency would rightly
fold into one message, so every fixture gets its own SID/wamid here; `<…>` factory
placeholders become our business number or a Messaging Service SID; status fixtures
name our real outbound message's SID.
"""

from __future__ import annotations

import copy
import hashlib
import json
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

from inbox.identity import canonical
from tests.channels.conftest import (
    META_APP_SECRET,
    META_FIXTURES,
    TWILIO_FIXTURES,
    ChannelEnv,
    env_settings,
    load,
)
from tests.fakes.graph_recorder import meta_signature, text_webhook
from tests.fakes.twilio_recorder import TEST_AUTH_TOKEN, twilio_signature
from tests.support.server import live_server

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(120)]

BUSINESS = "+15550001234"
SERVICE_SID = "MG" + "a" * 32
SID_FIELDS = ("MessageSid", "SmsMessageSid", "SmsSid")


def _files(folder: Path) -> list[Path]:
    files = sorted(folder.glob("*.json"))
    assert files, f"no fixtures in {folder}"
    return files


def twilio_params(fixture: dict[str, Any], *, suffix: str | None = None) -> dict[str, list[str]]:
    """The fixture's form fields (from its raw body when it has one), placeholders filled."""
    if fixture.get("raw_body"):
        params = parse_qs(fixture["raw_body"], keep_blank_values=True)
    else:
        params = {k: [v] for k, v in fixture["params"].items()}
    for key, values in params.items():
        if values and values[0].startswith("<") and values[0].endswith(">"):
            params[key] = [SERVICE_SID if key == "MessagingServiceSid" else BUSINESS]
        if suffix and key in SID_FIELDS:
            params[key] = [f"{values[0]}{suffix}"]
    return params


def _first(params: dict[str, list[str]], key: str) -> str:
    return (params.get(key) or [""])[0]


def assert_4xx_json(response: Any, what: str, *, status: int | None = None) -> dict[str, Any]:
    """A refusal: 4xx (or `status`) with our JSON error shape."""
    assert 400 <= response.status_code < 500, (what, response.status_code, response.text)
    if status is not None:
        assert response.status_code == status, (what, response.status_code, response.text)
    body: dict[str, Any] = response.json()
    assert body.get("error") and body.get("detail"), (what, body)
    return body


# -------------------------------------------------------------------- Twilio inbound

# What each upstream case asserts, in our terms (text after NULs are removed; media as
# (content type, url); display name on the contact; meta keys the connector must set).
TWILIO_EXPECTED: dict[str, dict[str, Any]] = {
    "mms_one_image_chatwoot": {"text": "testing3",
                               "media": [("image/jpeg", "https://chatwoot-assets.local/sample.png")]},
    "mms_one_media_raw_form_body_botbuilder": {"text": "Hello", "media": [("json", "www.google.com")]},
    "mms_twilio_hosted_media_url_chatwoot": {
        "text": "media",
        "media": [("image/png", "https://api.twilio.com/2010-04-01/Accounts/ACxxx/Messages/MMxx/Media/MExx")]},
    "mms_two_media_chatwoot": {"text": "testing multiple media",
                               "media": [("image/png", "https://chatwoot-assets.local/sample.png"),
                                         ("image/jpeg", "https://chatwoot-assets.local/sample.jpg")]},
    "sms_basic_messaging_service_chatwoot": {"text": "testing3",
                                             "meta": {"messaging_service_sid": SERVICE_SID}},
    "sms_body_with_null_bytes_chatwoot": {"text": "remove null bytes"},
    "sms_no_media_raw_form_body_botbuilder": {"text": "Hello", "media": []},
    "sms_signed_request_twilio-ruby": {"text": "Orly", "our_address": "+14158141819"},
    "sms_to_phone_number_channel_chatwoot": {"text": "testing3", "our_address": BUSINESS},
    "sms_without_body_chatwoot": {"text": ""},
    "whatsapp_blank_profile_name_chatwoot": {"text": "Hello without profile name", "name": None},
    "whatsapp_brazil_number_non_ascii_profile_chatwoot": {
        "channel": "whatsapp", "text": "Test message from Brazil", "name": "João Silva",
        "identity": ("phone", "+5541988887777")},
    "whatsapp_bsuid_only_sender_chatwoot": {
        "channel": "whatsapp", "text": "testing bsuid", "name": "Muhsin",
        "identity": ("whatsapp_user", "IN.2081978709342942"),
        "meta": {"whatsapp_user_id": "IN.2081978709342942", "username": "muhsin",
                 "parent_whatsapp_user_id": "IN.ENT.9081726354"}},
    "whatsapp_ctwa_referral_german_chatwoot": {
        "channel": "whatsapp", "text": "Hallo! Kann ich hierzu mehr Informationen erhalten?",
        "meta": {"referral": {"ctwa_clid": "AfjyUDlaIoiweZDnlzmDTEaG", "source_id": "120237244350960485",
                              "source_url": "https://fb.me/4tBfhWhjr", "source_type": "ad",
                              "headline": "German citizenship lawyer",
                              "body": "Fast-track your German citizenship", "num_media": "0"}}},
    "whatsapp_interactive_button_reply_call_permission_twilio-docs": {
        "channel": "whatsapp", "text": "VOICE_CALL_REQUEST", "name": "XXXX Caller BR-2",
        "our_address": "+554123456789",
        "meta": {"wa_id": "5524987654321", "message_type": "interactive",
                 "button": {"text": "VOICE_CALL_REQUEST", "payload": "REJECTED"}}},
    "whatsapp_location_chatwoot": {
        "text_startswith": "📍 Location", "meta": {"message_type": "location",
                                                  "location": {"latitude": 12.160894393921,
                                                               "longitude": 75.265205383301}}},
    "whatsapp_profile_name_chatwoot": {"text": "Hello with profile name", "name": "John Doe"},
}


async def test_every_twilio_inbound_fixture_is_stored_as_the_right_message(env: ChannelEnv) -> None:
    files = _files(TWILIO_FIXTURES / "inbound")
    assert {f.stem for f in files} == set(TWILIO_EXPECTED), "a fixture without expectations"
    for index, path in enumerate(files):  # sorted: the blank ProfileName comes before "John Doe"
        expected = TWILIO_EXPECTED[path.stem]
        params = twilio_params(load(path), suffix=f"-{index}")
        response = await env.post_twilio(params)
        assert response.status_code == 200, (path.name, response.status_code, response.text)
        assert response.headers["content-type"].startswith("text/xml"), path.name
        assert "<Response>" in response.text, path.name

        sid = _first(params, "MessageSid") or _first(params, "SmsMessageSid") or _first(params, "SmsSid")
        channel = expected.get("channel", "sms")
        message = await env.stored(channel, sid)
        assert message is not None, f"{path.name}: no {channel} message {sid}"
        data = await env.get(f"/conversations/{message.conversation_id}")
        conv, contact = data["conversation"], data["contact"]
        [out] = [m for m in data["messages"] if m["id"] == message.id]
        assert conv["channel"] == channel and conv["provider"] == "twilio", path.name
        assert out["direction"] == "in" and out["author"] == "customer", path.name
        if "text" in expected:
            assert out["text"] == expected["text"], (path.name, out["text"])
        else:
            assert out["text"].startswith(expected["text_startswith"]), (path.name, out["text"])
        if "media" in expected:
            got = [(a["content_type"], a["url"]) for a in out["attachments"]]
            assert got == expected["media"], (path.name, got)
        for key, value in expected.get("meta", {}).items():
            assert out["meta"].get(key) == value, (path.name, key, out["meta"])
        raw_from = _first(params, "From")
        kind, value = expected.get("identity") or ("phone", canonical("phone", raw_from))
        assert any(i["kind"] == kind and i["value"] == value for i in contact["identities"]), \
            (path.name, contact["identities"])
        if "name" in expected:
            assert contact["name"] == expected["name"], (path.name, contact["name"])
        assert conv["our_address"] == expected.get("our_address", _first(params, "To") or None), \
            (path.name, conv["our_address"])


# --------------------------------------------------------------------- Twilio status

async def _sms_conversation(env: ChannelEnv, sid: str = "SMstatus-in", sender: str = "+15550107001") -> int:
    response = await env.post_twilio({"MessageSid": sid, "From": sender, "To": BUSINESS,
                                      "Body": "Where is my order?"})
    assert response.status_code == 200, response.text
    message = await env.stored("sms", sid)
    assert message is not None
    return message.conversation_id


async def _sent_reply(env: ChannelEnv, conversation_id: int, text: str) -> tuple[int, str]:
    response = await env.reply(conversation_id, text)
    assert response.status_code == 201, response.text
    mid = response.json()["id"]
    sent = await env.wait_sent(conversation_id, mid)
    return mid, str(sent["provider_message_id"])


async def test_every_twilio_status_fixture_is_applied_to_our_message(env: ChannelEnv) -> None:
    cid = await _sms_conversation(env)
    for path in _files(TWILIO_FIXTURES / "status"):
        fixture = load(path)
        if "signed_by_controller" in path.stem:
            continue  # its signature cases have their own test below
        mid, sid = await _sent_reply(env, cid, f"reply for {path.stem}")
        params = twilio_params(fixture)
        params["MessageSid"] = params["SmsSid"] = [sid]
        response = await env.post_twilio(params, path="/webhooks/twilio/status")
        assert response.status_code == 204, (path.name, response.status_code, response.text)
        out = await env.message(cid, mid)
        assert out["delivery_status"] == fixture["expected"]["message_status"], (path.name, out)
        code = _first(params, "ErrorCode") or None
        assert out["error_code"] == code, (path.name, out)
        if code:
            # Twilio's ErrorMessage when it sent one, else our reason for the code.
            expected_text = _first(params, "ErrorMessage") or "Unknown error from the carrier"
            assert out["error_text"] == expected_text, (path.name, out)

        # The fixture as captured names a message we never sent: accepted, nothing changes.
        response = await env.post_twilio(twilio_params(fixture), path="/webhooks/twilio/status")
        assert response.status_code == 204, (path.name, response.text)


async def test_twilio_status_controller_fixture_signature_cases(env: ChannelEnv) -> None:
    fixture = load(TWILIO_FIXTURES / "status" / "status_delivered_signed_by_controller_chatwoot.json")
    cid = await _sms_conversation(env, "SMctl-in")
    mid, sid = await _sent_reply(env, cid, "signed status")
    params = twilio_params(fixture)
    params["MessageSid"] = [sid]
    path = "/webhooks/twilio/status"

    for signature in ("not-the-signature", fixture["headers"]["X-Twilio-Signature"]):
        refused = await env.post_twilio(params, path=path, signature=signature)
        assert_4xx_json(refused, "invalid signature", status=403)
    missing = await env.post_twilio(params, path=path, sign=False)
    assert assert_4xx_json(missing, "missing signature", status=403)["error"] == "signature_invalid"
    assert (await env.message(cid, mid))["delivery_status"] == "queued"

    ok = await env.post_twilio(params, path=path)
    assert ok.status_code == 204 and ok.content == b""
    assert (await env.message(cid, mid))["delivery_status"] == "delivered"


# ------------------------------------------------------------------ Twilio signatures

async def test_twilio_signature_vectors_through_the_endpoint(env: ChannelEnv) -> None:
    """twilio-python and twilio-ruby vectors, re-signed for our URL (query string kept).

    Voice-call parameter sets pass the signature check and are then refused as "not a
    message" (400, not 403); their upstream signatures, made for another URL, are 403.
    """
    python = load(TWILIO_FIXTURES / "signature" / "twilio-python_request_validator_vectors.json")
    for case in python["cases"]:
        if "url" not in case:
            continue  # a bare hash vector, checked with the bodySHA256 case
        query = urlsplit(case["url"]).query
        if "body" in case:  # a JSON webhook: the URL carries bodySHA256 of the raw body
            assert hashlib.sha256(case["body"].encode()).hexdigest() in query
            url = env.twilio_url(query=query)
            headers = {"Content-Type": case["content_type"],
                       "X-Twilio-Signature": twilio_signature(url, {}, TEST_AUTH_TOKEN)}
            accepted = await env.client.post(f"/webhooks/twilio?{query}", content=case["body"], headers=headers)
            assert assert_4xx_json(accepted, case["name"], status=400)["error"] == "unsupported_payload"
            tampered = await env.client.post(f"/webhooks/twilio?{query}",
                                             content=case["body"].replace("true", "false"), headers=headers)
            assert_4xx_json(tampered, case["name"] + " tampered", status=403)
            continue
        if "params_pairs" in case:
            params: dict[str, list[str]] = {}
            for key, value in case["params_pairs"]:
                params.setdefault(key, []).append(value)
        else:
            params = {k: [v] for k, v in case["params"].items()}
        signed = await env.post_twilio(params, query=query)
        body = assert_4xx_json(signed, case["name"], status=400)
        assert body["error"] == "unsupported_payload", (case["name"], body)
        upstream = case.get("signature") or case.get("expected_signature")
        refused = await env.post_twilio(params, query=query, signature=upstream)
        assert_4xx_json(refused, case["name"] + " upstream signature", status=403)

    ruby = load(TWILIO_FIXTURES / "signature" / "twilio-ruby_request_validator_vectors.json")
    for case in ruby["cases"]:
        params = {k: [v] for k, v in case["params"].items()}
        refused = await env.post_twilio(params, signature=case["signature"])
        assert_4xx_json(refused, case["name"] + " upstream signature", status=403)
        signed = await env.post_twilio(params)
        if "SmsMessageSid" in case["params"]:
            assert signed.status_code == 200, (case["name"], signed.text)
            message = await env.stored("sms", case["params"]["SmsMessageSid"])
            assert message is not None and message.text == case["params"]["Body"]
        else:
            assert assert_4xx_json(signed, case["name"], status=400)["error"] == "unsupported_payload"


async def test_twilio_node_url_normalisation_cases_through_the_endpoint(
    env: ChannelEnv, database_url: str
) -> None:
    """twilio-node's equivalence cases on a server whose public URL is https://example.com.

    The case's host is played by INBOX_PUBLIC_URL and its path by /webhooks/twilio; a
    signature for the case's `server_url` must be accepted exactly when upstream says so.
    """
    node = load(TWILIO_FIXTURES / "signature" / "twilio-node_url_normalisation_cases.json")
    settings = env_settings(database_url, 0, env.twilio, env.graph, public_url="https://example.com",
                            twilio_auth_token=node["auth_token"])
    async with live_server(settings) as server:
        for case in node["cases"]:
            signed_url = case["server_url"].replace("/path", "/webhooks/twilio")
            signature = twilio_signature(signed_url, case["params"], node["auth_token"])
            target = urlsplit(case["target_url"])
            response = await server.client.post(f"/webhooks/twilio?{target.query}", data=case["params"],
                                                headers={"X-Twilio-Signature": signature})
            body = assert_4xx_json(response, case["name"])
            # Valid: past the signature, then refused as "no message" (400); invalid: 403.
            expected = "unsupported_payload" if case["expected_valid"] else "signature_invalid"
            assert body["error"] == expected, (case["name"], body)


# ----------------------------------------------------------------------- Meta messages

def _meta_body(fixture: dict[str, Any], suffix: str) -> dict[str, Any]:
    body = copy.deepcopy(fixture["body"])
    for entry in body["entry"]:
        for change in entry["changes"]:
            for message in change["value"].get("messages", []):
                message["id"] = f"{message['id']}{suffix}"
    return body


def _media(kind: str, mime: str, url: str) -> dict[str, Any]:
    return {"media": [(mime, url)], "meta": {"message_type": kind}}


META_EXPECTED: dict[str, dict[str, Any]] = {
    "interactive_button_button_pywa": {"meta": {"message_type": "interactive",
                                                "reply_to_provider_id": "wamid.xyzxyz"},
                                       "meta_has": ["button"]},
    "interactive_button_quick_reply_pywa": {
        "text": "title", "meta": {"button": {"text": "title", "payload": "callback_data"},
                                  "reply_to_provider_id": "wamid.xyzxyz=="}},
    "interactive_button_quick_reply_without_context_pywa": {
        "text": "title", "meta": {"button": {"text": "title", "payload": "callback_data"}},
        "meta_lacks": ["reply_to_provider_id"]},
    "interactive_list_callback_pywa": {"meta_has": ["list_reply"]},
    "interactive_list_description_pywa": {"meta_has": ["list_reply"], "list_description": True},
    "message_animated_sticker_pywa": {"media": [("image/webp", "meta-media:1234567890987654321")],
                                      "media_meta": {"animated": True}},
    "message_audio_pywa": {"media_types": ["audio/ogg; codecs=opus"], "meta": {"forwarded": True},
                           "media_meta_lacks": ["voice"]},
    "message_chosen_location_pywa": {"text_contains": "Facebook HQ", "meta_has": ["location"]},
    "message_contacts_pywa": {"text_contains": "Chandler Bing", "meta_has": ["contacts"]},
    "message_current_location_pywa": {"text_contains": "12.25089", "meta_has": ["location"]},
    "message_document_pywa": {"text": "caption", "media_types": ["application/pdf"],
                              "filenames": ["filename.pdf"]},
    "message_forwarded_many_times_pywa": {"text": "text forwarded many times",
                                          "meta": {"forwarded_many_times": True}},
    "message_forwarded_pywa": {"text": "forwarded text", "meta": {"forwarded": True}},
    "message_image_pywa": {"media": [("image/jpeg", "meta-media:65463453")]},
    "message_interactive_message_with_err_pywa": {"flags": ["broken"], "meta_has": ["errors"]},
    "message_media_with_url_pywa": {"media": [("image/jpeg", "meta-media:65463453")],
                                    "media_meta_has": ["url"]},
    "message_order_pywa": {"text_contains": "HAMBURGER", "meta_has": ["order"]},
    "message_reaction_pywa": {"meta": {"reaction": {"emoji": "😮", "message_id": "wamid.yzxyzx="}}},
    "message_referral_pywa": {"meta_has": ["referral"]},
    "message_reply_pywa": {"text": "replied text", "meta": {"reply_to_provider_id": "wamid.xyzxyz=="}},
    "message_static_sticker_pywa": {"media": [("image/webp", "meta-media:1234567890987654321")]},
    "message_text_contact_without_profile_netflie_issue": {
        "text": "12345 is your Instagram code. Don't share it.", "name": None,
        "sender": "+447710173736"},
    "message_text_pywa": {"text": "Body Text"},
    "message_unreaction_empty_pywa": {"meta": {"reaction": {"emoji": None, "message_id": "wamid.yzxyzx="}}},
    "message_unreaction_no_emoji_pywa": {"meta": {"reaction": {"emoji": None, "message_id": "wamid.yzxyzx="}}},
    "message_unsupported_pywa": {"flags": ["broken"], "text_contains": "Unsupported"},
    "message_unsupported_with_type_pywa": {"flags": ["broken"], "text_contains": "Unsupported"},
    "message_video_pywa": {"text": "caption", "media_types": ["video/mp4"]},
    "message_voice_pywa": {"media_types": ["audio/ogg; codecs=opus"], "media_meta": {"voice": True}},
    # system/
    "deleted_message_revoke_pywa": {"meta": {"delete_of": "<ORIGINAL_WHATSAPP_MESSAGE_ID>"},
                                    "identity": ("whatsapp_user", "US.13491208655302741918")},
    "edited_message_image_pywa": {
        "text": "Updated image caption", "sender": "+16505551234",
        "media_types": ["image/jpeg"],
        "meta": {"edit_of": "wamid.HBgLMTQxMjU1NTA4MjkVAgASGBQzQUNCNjk5RDUwNUZGMUZEM0VBRAA="}},
    # The same number wrote before as "Test Name": a contact keeps the name it first had.
    "system_identity_change_pywa": {"flags": ["auto_reply"], "name": "Test Name", "meta_has": ["system"]},
    "system_phone_number_change_pywa": {"flags": ["auto_reply"], "text_contains": "972912345678",
                                        "name": "Test Name"},
}


async def test_every_meta_message_and_system_fixture_is_stored_as_the_right_message(env: ChannelEnv) -> None:
    files = _files(META_FIXTURES / "messages") + _files(META_FIXTURES / "system")
    assert {f.stem for f in files} == set(META_EXPECTED), "a fixture without expectations"
    for index, path in enumerate(files):
        expected = META_EXPECTED[path.stem]
        body = _meta_body(load(path), f".{index}")
        value = body["entry"][0]["changes"][0]["value"]
        [msg] = value["messages"]
        response = await env.post_meta(body)
        assert response.status_code == 200, (path.name, response.status_code, response.text)
        assert response.json() == {"stored": 1, "statuses": 0}, path.name

        message = await env.stored("whatsapp", msg["id"])
        assert message is not None, f"{path.name}: no message {msg['id']}"
        data = await env.get(f"/conversations/{message.conversation_id}")
        conv, contact = data["conversation"], data["contact"]
        [out] = [m for m in data["messages"] if m["id"] == message.id]
        where = (path.name, out)
        assert conv["channel"] == "whatsapp" and conv["provider"] == "meta", where
        assert conv["our_address"] == value["metadata"]["phone_number_id"], (path.name, conv)
        assert out["direction"] == "in" and out["author"] == "customer", where
        if "text" in expected:
            assert out["text"] == expected["text"], where
        assert out["text"].strip() or out["attachments"], f"{path.name}: an agent would see nothing"
        if "text_contains" in expected:
            assert expected["text_contains"] in out["text"], where
        attachments = out["attachments"]
        if "media" in expected:
            assert [(a["content_type"], a["url"]) for a in attachments] == expected["media"], where
        if "media_types" in expected:
            assert [a["content_type"] for a in attachments] == expected["media_types"], where
        if "filenames" in expected:
            assert [a["filename"] for a in attachments] == expected["filenames"], where
        if not any(k in expected for k in ("media", "media_types")):
            assert attachments == [], where
        for key, wanted in expected.get("meta", {}).items():
            assert out["meta"].get(key) == wanted, (path.name, key, out["meta"])
        for key in expected.get("meta_has", []):
            assert out["meta"].get(key), (path.name, key, out["meta"])
        for key in expected.get("meta_lacks", []):
            assert key not in out["meta"], (path.name, key, out["meta"])
        for key, wanted in expected.get("media_meta", {}).items():
            assert out["meta"]["media"].get(key) == wanted, (path.name, key, out["meta"])
        for key in expected.get("media_meta_has", []):
            assert out["meta"]["media"].get(key), (path.name, key, out["meta"])
        for key in expected.get("media_meta_lacks", []):
            assert key not in out["meta"]["media"], (path.name, key, out["meta"])
        if expected.get("list_description"):
            assert out["meta"]["list_reply"].get("description"), where
        for flag in expected.get("flags", []):
            assert flag in out["flags"], where

        kind, ident = expected.get("identity") or ("phone", expected.get("sender", "+" + msg["from"]))
        assert any(i["kind"] == kind and i["value"] == ident for i in contact["identities"]), \
            (path.name, contact["identities"])
        contacts = value.get("contacts") or [{}]
        default_name = (contacts[0].get("profile") or {}).get("name")
        assert contact["name"] == expected.get("name", default_name), (path.name, contact["name"])


# ----------------------------------------------------------------------- Meta statuses

async def test_every_meta_status_fixture_is_applied_to_our_message(env: ChannelEnv) -> None:
    inbound = text_webhook("Is it in stock?", wa_id="15550107002", message_id="wamid.status-in")
    assert (await env.post_meta(inbound)).status_code == 200
    message = await env.stored("whatsapp", "wamid.status-in")
    assert message is not None
    cid = message.conversation_id
    mapped = {"sent": "sent", "delivered": "delivered", "read": "read", "played": "read",
              "failed": "failed"}
    for path in _files(META_FIXTURES / "statuses"):
        fixture = load(path)
        mid, wamid = await _sent_reply(env, cid, f"reply for {path.stem}")
        body = copy.deepcopy(fixture["body"])
        [status] = body["entry"][0]["changes"][0]["value"]["statuses"]
        status["id"] = wamid
        response = await env.post_meta(body)
        assert response.status_code == 200, (path.name, response.text)
        assert response.json() == {"stored": 0, "statuses": 1}, path.name
        out = await env.message(cid, mid)
        assert out["delivery_status"] == mapped[status["status"]], (path.name, out)
        if status.get("errors"):
            [error] = status["errors"]
            assert out["error_code"] == str(error["code"]), (path.name, out)
            assert out["error_text"] == error["message"], (path.name, out)
        # As captured it names a wamid we never sent: accepted, nothing stored.
        assert (await env.post_meta(fixture["body"])).status_code == 200, path.name


# ---------------------------------------------------- Meta signature and verification

async def test_meta_signature_vector_verifies_byte_for_byte(env: ChannelEnv) -> None:
    vector = load(META_FIXTURES / "signature" / "x-hub-signature-256_vector_pywa.json")
    raw = (META_FIXTURES / "signature" / "x-hub-signature-256_vector_pywa.body.json").read_bytes()
    assert raw == vector["raw_body"].encode()
    assert meta_signature(raw, META_APP_SECRET) == vector["headers"]["X-Hub-Signature-256"]
    upstream = vector["headers"]["X-Hub-Signature-256"]

    response = await env.post_meta(raw, signature=upstream)
    assert response.status_code == 200 and response.json() == {"stored": 1, "statuses": 0}
    [wamid] = [m["id"] for m in json.loads(raw)["entry"][0]["changes"][0]["value"]["messages"]]
    message = await env.stored("whatsapp", wamid)
    assert message is not None and message.text == "Hey there! I am using PyWa."

    # The same JSON re-serialised (other whitespace) no longer matches; nor do these.
    respaced = json.dumps(json.loads(raw), indent=1).encode()
    for body, signature in [(respaced, upstream), (raw, upstream.replace("sha256=", "sha1=")),
                            (raw, "sha256=" + "0" * 64), (raw, upstream.upper())]:
        refused = await env.post_meta(body, signature=signature)
        if signature == upstream.upper():  # hex is case-insensitive; the scheme too
            assert refused.status_code == 200, refused.text
            continue
        assert assert_4xx_json(refused, signature, status=403)["error"] == "signature_invalid"
    missing = await env.post_meta(raw, sign=False)
    assert_4xx_json(missing, "missing signature", status=403)


async def test_meta_verification_cases(env: ChannelEnv) -> None:
    fixture = load(META_FIXTURES / "verification" / "get_hub_challenge_cases_netflie.json")
    for case in fixture["cases"]:
        response = await env.client.get(f"/webhooks/whatsapp?{case['query']}")
        assert response.status_code == case["expected_status"], (case["name"], response.text)
        if response.status_code == 200:
            assert response.text == case["expected_body"]
        else:
            assert_4xx_json(response, case["name"], status=403)
    for query in ["", "hub.mode=unsubscribe&hub.verify_token=super-secret&hub.challenge=x",
                  "hub.mode=subscribe&hub.verify_token=super-secret"]:
        assert_4xx_json(await env.client.get(f"/webhooks/whatsapp?{query}"), query, status=403)


# ----------------------------------------------------------------- never a 500

async def test_signed_garbage_is_refused_with_a_clear_4xx_never_a_500(env: ChannelEnv) -> None:
    twilio_forms: list[dict[str, Any]] = [
        {},
        {"Body": "no sid, no sender"},
        {"MessageSid": "SMg1", "Body": "no sender"},
        {"MessageSid": "SMg2", "From": "whatsapp:", "Body": "empty WhatsApp sender"},
        {"MessageSid": "SMg3", "From": "messenger:12345", "Body": "another channel"},
        {"MessageSid": "SMg4", "From": "   ", "Body": "blank sender"},
    ]
    for form in twilio_forms:
        response = await env.post_twilio(form)
        assert_4xx_json(response, repr(form))
    for form in [{}, {"MessageSid": "SMx"}, {"MessageStatus": "delivered"}]:
        assert_4xx_json(await env.post_twilio(form, path="/webhooks/twilio/status"), repr(form))
    odd = await env.post_twilio({"MessageSid": "SMg5", "From": "+15550107003", "NumMedia": "lots",
                                 "MediaUrl0": "https://example.com/a.png", "Body": "odd media count"})
    assert odd.status_code == 200, odd.text

    bodies: list[bytes] = [
        b"", b"not json", b"[]", b"null", b'"text"', b"{}", b'{"entry": "x"}',
        b'{"object": "whatsapp_business_account", "entry": [1, "x", null]}',
        b'{"object": "whatsapp_business_account", "entry": [{"changes": [{"value": "x"}]}]}',
        json.dumps({"object": "whatsapp_business_account", "entry": [{"changes": [{"field": "messages",
                   "value": {"messages": [{"id": "wamid.nofrom", "type": "text"}]}}]}]}).encode(),
        "\u00ff\u00fe".encode("latin-1"),
    ]
    for raw in bodies:
        response = await env.post_meta(raw)
        assert response.status_code < 500, (raw, response.status_code, response.text)
        if response.status_code != 200:
            assert_4xx_json(response, repr(raw))


async def test_nul_bytes_anywhere_in_a_payload_never_reach_the_database_as_a_500(env: ChannelEnv) -> None:
    """PostgreSQL refuses NUL in text: every field of a real payload gets one appended."""
    fixture = load(TWILIO_FIXTURES / "inbound" / "whatsapp_interactive_button_reply_call_permission_twilio-docs.json")
    base = twilio_params(fixture)
    base.update({"NumMedia": ["1"], "MediaUrl0": ["https://x.example/a.png"],
                 "MediaContentType0": ["image/png"]})
    for index, key in enumerate(sorted(base)):
        form = {k: list(v) for k, v in base.items()}
        form["MessageSid"] = [f"SMnul{index}"]
        form[key] = [form[key][0] + "\x00"]
        response = await env.post_twilio(form)
        assert response.status_code < 500, (key, response.status_code, response.text)

    for index, path in enumerate(["text", "profile", "from", "id", "pnid", "display"]):
        body = text_webhook("hello", wa_id="15550109001", message_id=f"wamid.nul{index}")
        value = body["entry"][0]["changes"][0]["value"]
        message = value["messages"][0]
        if path == "text":
            message["text"]["body"] += "\x00"
        elif path == "profile":
            value["contacts"][0]["profile"]["name"] += "\x00"
        elif path == "from":
            message["from"] += "\x00"
        elif path == "id":
            message["id"] += "\x00"
        elif path == "pnid":
            value["metadata"]["phone_number_id"] += "\x00"
        else:
            value["metadata"]["display_phone_number"] += "\x00"
        response = await env.post_meta(body)
        assert response.status_code < 500, (path, response.status_code, response.text)


async def test_oversized_or_mistyped_fields_are_refused_or_stored_never_a_500(env: ChannelEnv) -> None:
    """Every field of a real payload made 2,000 characters long, or of another JSON type.

    PostgreSQL enforces the column lengths SQLite ignores; whatever a provider (or anyone
    with a leaked secret) sends must end as 200 or a clear 4xx.
    """
    fixture = load(TWILIO_FIXTURES / "inbound" / "whatsapp_interactive_button_reply_call_permission_twilio-docs.json")
    base = twilio_params(fixture)
    base.update({"NumMedia": ["1"], "MediaUrl0": ["https://x.example/a.png"], "MediaContentType0": ["image/png"]})
    for index, key in enumerate(sorted(base)):
        form = {k: list(v) for k, v in base.items()}
        form["MessageSid"] = [f"SMlong{index}"]
        form[key] = ["9" * 2000]
        response = await env.post_twilio(form)
        assert response.status_code == 200 or 400 <= response.status_code < 500, (key, response.text)

    cid = await _sms_conversation(env, "SMlong-in", "+15550109100")
    for index, key in enumerate(["MessageSid", "MessageStatus", "ErrorCode", "ErrorMessage", "To", "From"]):
        mid, sid = await _sent_reply(env, cid, f"long {index}")
        params = {"MessageSid": sid, "MessageStatus": "failed", "ErrorCode": "30008",
                  "ErrorMessage": "Unknown error", "To": "+15550109100", "From": BUSINESS}
        params[key] = "7" * 2000
        response = await env.post_twilio(params, path="/webhooks/twilio/status")
        assert response.status_code == 204 or 400 <= response.status_code < 500, (key, response.text)

    seed = load(META_FIXTURES / "messages" / "message_document_pywa.json")["body"]
    status_seed = load(META_FIXTURES / "statuses" / "status_failed_pywa.json")["body"]
    for kind, body_seed in (("message", seed), ("status", status_seed)):
        value = body_seed["entry"][0]["changes"][0]["value"]
        item = (value.get("messages") or value.get("statuses"))[0]
        fields = [("metadata", k) for k in value["metadata"]] + [("item", k) for k in item]
        for index, (where, key) in enumerate(fields):
            for replacement in ("9" * 2000, {"nested": ["x"]}, 12345678901234567890, None):
                body = copy.deepcopy(body_seed)
                target_value = body["entry"][0]["changes"][0]["value"]
                target_item = (target_value.get("messages") or target_value.get("statuses"))[0]
                if kind == "message":
                    target_item["id"] = f"wamid.long{index}"
                target = target_value["metadata"] if where == "metadata" else target_item
                target[key] = replacement
                response = await env.post_meta(body)
                assert response.status_code == 200 or 400 <= response.status_code < 500, \
                    (kind, where, key, str(replacement)[:20], response.text)


async def test_webhooks_of_an_unconfigured_provider_answer_a_clear_404(database_url: str) -> None:
    from tests.conftest import make_settings

    async with live_server(make_settings(database_url)) as server:
        form = {"MessageSid": "SMnone", "From": "+15550109200", "Body": "hi"}
        for method, path in [("POST", "/webhooks/twilio"), ("POST", "/webhooks/twilio/status"),
                             ("GET", "/webhooks/whatsapp?hub.mode=subscribe&hub.verify_token=x&hub.challenge=y"),
                             ("POST", "/webhooks/whatsapp")]:
            response = await server.client.request(method, path, data=form if method == "POST" else None)
            body = assert_4xx_json(response, path, status=404)
            assert "not configured" in body["detail"], body
