"""The Twilio connector against recorded real payloads, signature vectors and a fake Twilio API.

Fixtures come from ../shared/fixtures (tests.conftest.FIXTURES)/twilio (INBOX_SHARED_FIXTURES overrides the
folder); sends go through the real `twilio` client to `tests.fakes.TwilioRecorder`.
"""

from __future__ import annotations


import json
import os
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlencode

import httpx
import pytest

from connectors.twilio import TwilioConnector, build
from inbox.errors import Conflict, SendFailed, SignatureInvalid, UnsupportedPayload
from inbox.settings import Settings
from inbox.types import (
    FLAG_HELP,
    FLAG_OPT_IN,
    FLAG_OPT_OUT,
    Attachment,
    Inbound,
    Outbound,
    TemplateRef,
    WebhookRequest,
)

from tests.fakes.fixtures import twilio_recorder  # noqa: F401  (also a plugin in tests/conftest.py)
from tests.fakes.twilio_recorder import (
    TEST_ACCOUNT_SID,
    TEST_AUTH_TOKEN,
    TwilioRecorder,
    twilio_signature,
)

from tests.conftest import FIXTURES as SHARED_FIXTURES  # noqa: E402

FIXTURES = SHARED_FIXTURES / "twilio"
pytestmark = pytest.mark.skipif(not FIXTURES.is_dir(), reason=f"no fixtures at {FIXTURES}")

PUBLIC_URL = "https://inbox.example.com/webhooks/twilio"
STATUS_URL = "https://inbox.example.com/webhooks/twilio/status"


def load(relative: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((FIXTURES / relative).read_text(encoding="utf-8"))
    return data


def fixture_names(folder: str) -> list[str]:
    return sorted(p.name for p in (FIXTURES / folder).glob("*.json")) if FIXTURES.is_dir() else []


def connector(**overrides: Any) -> TwilioConnector:
    options: dict[str, Any] = {"account_sid": TEST_ACCOUNT_SID, "auth_token": TEST_AUTH_TOKEN}
    return TwilioConnector(**{**options, **overrides})


def form_request(
    form: dict[str, list[str]],
    *,
    url: str = PUBLIC_URL,
    token: str | None = TEST_AUTH_TOKEN,
    body: bytes | None = None,
    headers: dict[str, str] | None = None,
) -> WebhookRequest:
    """A form POST as the web layer builds it, signed with `token` unless None."""
    all_headers = {"content-type": "application/x-www-form-urlencoded"}
    if token is not None:
        all_headers["x-twilio-signature"] = twilio_signature(url, form, token)
    all_headers.update({k.lower(): v for k, v in (headers or {}).items()})
    if body is None:
        body = urlencode([(k, v) for k, values in form.items() for v in values]).encode()
    return WebhookRequest(method="POST", url=url, headers=all_headers, body=body, form=form)


def fixture_request(fixture: dict[str, Any]) -> WebhookRequest:
    """The fixture as a signed WebhookRequest (form from raw_body when there is one)."""
    if fixture.get("raw_body"):
        body = fixture["raw_body"].encode()
        form = parse_qs(fixture["raw_body"], keep_blank_values=True)
    else:
        form = {k: [v] for k, v in fixture["params"].items()}
        body = urlencode(fixture["params"]).encode()
    url = fixture.get("url")
    if not url or "<" in url:
        url = PUBLIC_URL
    return form_request(form, url=url, body=body)


def sms(**form: str) -> WebhookRequest:
    base = {"MessageSid": "SM" + "a" * 32, "From": "+15551230000", "To": "+15559870000"}
    return form_request({k: [v] for k, v in {**base, **form}.items()})


# ----------------------------------------------------------------------- signatures


def python_vectors() -> list[dict[str, Any]]:
    if not FIXTURES.is_dir():
        return []
    data = load("signature/twilio-python_request_validator_vectors.json")
    return [dict(c, auth_token=data["auth_token"]) for c in data["cases"] if "url" in c]


@pytest.mark.parametrize("case", python_vectors(), ids=lambda c: c["name"])
def test_twilio_python_signature_vectors_verify(case: dict[str, Any]) -> None:
    signature = case.get("signature") or case["expected_signature"]
    headers = {"x-twilio-signature": signature}
    if "body" in case:
        headers["content-type"] = case["content_type"]
        request = WebhookRequest("POST", case["url"], headers, case["body"].encode())
    else:
        pairs = [tuple(p) for p in case.get("params_pairs") or case["params"].items()]
        form: dict[str, list[str]] = {}
        for key, value in pairs:
            form.setdefault(key, []).append(value)
        headers["content-type"] = "application/x-www-form-urlencoded"
        request = WebhookRequest("POST", case["url"], headers, urlencode(pairs).encode(), form=form)
    connector(auth_token=case["auth_token"]).verify(request)


def test_json_body_signature_covers_the_body_through_body_sha256() -> None:
    data = load("signature/twilio-python_request_validator_vectors.json")
    [case] = [c for c in data["cases"] if c["name"] == "test_validation_of_body_succeeds"]
    [hashed] = [c for c in data["cases"] if c["name"] == "test_compute_hash_unicode"]
    assert case["url"].endswith("bodySHA256=" + hashed["expected_body_sha256_hex"])
    twilio = connector(auth_token=data["auth_token"])
    headers = {"x-twilio-signature": case["signature"], "content-type": "application/json"}
    twilio.verify(WebhookRequest("POST", case["url"], headers, case["body"].encode()))
    changed = case["body"].replace("true", "True").encode()
    with pytest.raises(SignatureInvalid):
        twilio.verify(WebhookRequest("POST", case["url"], headers, changed))
    unsigned_url = case["url"].split("&bodySHA256=")[0]
    with pytest.raises(SignatureInvalid):
        twilio.verify(WebhookRequest("POST", unsigned_url, headers, case["body"].encode()))


@pytest.mark.parametrize("index", [0, 1])
def test_twilio_ruby_captured_requests_verify(index: int) -> None:
    data = load("signature/twilio-ruby_request_validator_vectors.json")
    case = data["cases"][index]
    form = {k: [v] for k, v in case["params"].items()}
    request = form_request(form, url=case["url"], token=None,
                           headers={"X-Twilio-Signature": case["signature"]})
    connector(auth_token=data["auth_token"]).verify(request)


def node_cases() -> list[dict[str, Any]]:
    if not FIXTURES.is_dir():
        return []
    data = load("signature/twilio-node_url_normalisation_cases.json")
    return [dict(c, auth_token=data["auth_token"]) for c in data["cases"]]


@pytest.mark.parametrize("case", node_cases(), ids=lambda c: c["name"])
def test_twilio_node_url_normalisation_cases(case: dict[str, Any]) -> None:
    signature = twilio_signature(case["server_url"], {}, case["auth_token"])
    request = WebhookRequest("POST", case["target_url"], {"x-twilio-signature": signature}, b"")
    twilio = connector(auth_token=case["auth_token"])
    if case["expected_valid"]:
        twilio.verify(request)
    else:
        with pytest.raises(SignatureInvalid):
            twilio.verify(request)


def test_signed_inbound_fixture_verifies_and_parses() -> None:
    fixture = load("inbound/sms_signed_request_twilio-ruby.json")
    form = {k: [v] for k, v in fixture["params"].items()}
    request = form_request(form, url=fixture["url"], token=None, headers=fixture["headers"])
    twilio = connector(auth_token=fixture["auth_token"])
    twilio.verify(request)
    [inbound] = twilio.parse(request)
    assert inbound.text == fixture["expected"]["body"]
    assert inbound.provider_message_id == "SM2003cbd5e6a3701999aa3e5f20ff2787"


def _ruby_sms_request() -> tuple[TwilioConnector, dict[str, list[str]], str, str]:
    data = load("signature/twilio-ruby_request_validator_vectors.json")
    case = data["cases"][1]
    return (connector(auth_token=data["auth_token"]), {k: [v] for k, v in case["params"].items()},
            case["url"], case["signature"])


def test_a_changed_byte_in_any_field_fails_verification() -> None:
    twilio, form, url, signature = _ruby_sms_request()
    for key in form:
        changed = dict(form, **{key: [form[key][0] + "x"]})
        request = form_request(changed, url=url, token=None, headers={"X-Twilio-Signature": signature})
        with pytest.raises(SignatureInvalid):
            twilio.verify(request)
    tampered = form_request(form, url=url, token=None,
                            headers={"X-Twilio-Signature": "n" + signature[1:]})
    with pytest.raises(SignatureInvalid):
        twilio.verify(tampered)


def test_an_added_field_fails_verification() -> None:
    twilio, form, url, signature = _ruby_sms_request()
    request = form_request(dict(form, Extra=["1"]), url=url, token=None,
                           headers={"X-Twilio-Signature": signature})
    with pytest.raises(SignatureInvalid):
        twilio.verify(request)


@pytest.mark.parametrize(
    "url",
    ["http://twiliotests.heroku.com/validate/voice", "https://twiliotests.heroku.com/validate/sms",
     "http://attacker.example/validate/sms", "http://twiliotests.heroku.com/validate/sms?x=1"],
)
def test_a_wrong_url_fails_verification(url: str) -> None:
    twilio, form, _, signature = _ruby_sms_request()
    request = form_request(form, url=url, token=None, headers={"X-Twilio-Signature": signature})
    with pytest.raises(SignatureInvalid):
        twilio.verify(request)


def test_a_missing_signature_header_or_wrong_token_fails() -> None:
    request = sms(Body="hi")
    connector().verify(request)
    unsigned = WebhookRequest(request.method, request.url,
                              {"content-type": "application/x-www-form-urlencoded"},
                              request.body, form=request.form)
    with pytest.raises(SignatureInvalid, match="missing"):
        connector().verify(unsigned)
    with pytest.raises(SignatureInvalid):
        connector(auth_token="another-token").verify(request)


def test_json_body_without_body_sha256_is_refused() -> None:
    request = WebhookRequest("POST", PUBLIC_URL, {
        "content-type": "application/json",
        "x-twilio-signature": twilio_signature(PUBLIC_URL, {}, TEST_AUTH_TOKEN),
    }, b'{"Body": "forged"}')
    with pytest.raises(SignatureInvalid):
        connector().verify(request)


def test_form_is_read_from_the_body_when_the_web_layer_did_not_decode_it() -> None:
    request = sms(Body="from body")
    bare = WebhookRequest(request.method, request.url, request.headers, request.body)
    connector().verify(bare)
    assert connector().parse(bare)[0].text == "from body"


def test_status_controller_fixture_signature_cases() -> None:
    fixture = load("status/status_delivered_signed_by_controller_chatwoot.json")
    form = {k: [v] for k, v in fixture["params"].items()}
    connector().verify(form_request(form, url=STATUS_URL))  # valid -> 204 upstream
    with pytest.raises(SignatureInvalid):  # invalid -> 403
        connector().verify(form_request(form, url=STATUS_URL, headers={"X-Twilio-Signature": "bad"}))
    with pytest.raises(SignatureInvalid):  # missing -> 403
        connector().verify(form_request(form, url=STATUS_URL, token=None))


# --------------------------------------------------------------------------- inbound

# What each inbound fixture must yield: the fixture's own `expected`, restated as our fields.
INBOUND_EXPECTED: dict[str, dict[str, Any]] = {
    "mms_one_image_chatwoot.json": {
        "channel": "sms", "text": "testing3", "sender": "+12345", "provider_message_id": "SMxx",
        "attachments": [("image/jpeg", "https://chatwoot-assets.local/sample.png")],
    },
    "mms_one_media_raw_form_body_botbuilder.json": {
        "provider_message_id": "SMa56324aa4a31735561b7205472192d68", "text": "Hello",
        "sender": "+571138050810", "recipient": "+1A693421974",
        "attachments": [("json", "www.google.com")],
    },
    "mms_twilio_hosted_media_url_chatwoot.json": {
        "text": "media",
        "attachments": [("image/png", "https://api.twilio.com/2010-04-01/Accounts/ACxxx/Messages/MMxx/Media/MExx")],
    },
    "mms_two_media_chatwoot.json": {
        "text": "testing multiple media",
        "attachments": [("image/png", "https://chatwoot-assets.local/sample.png"),
                        ("image/jpeg", "https://chatwoot-assets.local/sample.jpg")],
    },
    "sms_basic_messaging_service_chatwoot.json": {
        "channel": "sms", "text": "testing3", "sender_kind": "phone", "recipient": None,
    },
    "sms_body_with_null_bytes_chatwoot.json": {"text": "remove null bytes"},
    "sms_no_media_raw_form_body_botbuilder.json": {
        "text": "Hello", "attachments": [], "provider_message_id": "SMa56324aa4a31735561b7205472192d68",
    },
    "sms_signed_request_twilio-ruby.json": {
        "text": "Orly", "provider_message_id": "SM2003cbd5e6a3701999aa3e5f20ff2787",
        "sender": "+14159354345", "recipient": "+14158141819",
    },
    "sms_to_phone_number_channel_chatwoot.json": {"text": "testing3"},
    "sms_without_body_chatwoot.json": {"text": "", "attachments": []},
    "whatsapp_blank_profile_name_chatwoot.json": {
        "display_name": None, "sender": "+1234567890", "text": "Hello without profile name",
    },
    "whatsapp_brazil_number_non_ascii_profile_chatwoot.json": {
        "channel": "whatsapp", "sender": "+5541988887777", "sender_kind": "phone",
        "display_name": "João Silva",
    },
    "whatsapp_bsuid_only_sender_chatwoot.json": {
        "channel": "whatsapp", "sender": "IN.2081978709342942", "sender_kind": "whatsapp_user",
        "display_name": "Muhsin", "text": "testing bsuid",
    },
    "whatsapp_ctwa_referral_german_chatwoot.json": {
        "channel": "whatsapp", "sender": "+491741763110",
        "text": "Hallo! Kann ich hierzu mehr Informationen erhalten?",
    },
    "whatsapp_interactive_button_reply_call_permission_twilio-docs.json": {
        "channel": "whatsapp", "sender": "+5524987654321", "recipient": "+554123456789",
        "display_name": "XXXX Caller BR-2", "text": "VOICE_CALL_REQUEST",
    },
    "whatsapp_location_chatwoot.json": {"attachments": []},
    "whatsapp_profile_name_chatwoot.json": {"display_name": "John Doe"},
}


def test_every_inbound_fixture_has_a_stated_expectation() -> None:
    assert set(fixture_names("inbound")) == set(INBOUND_EXPECTED)


@pytest.mark.parametrize("name", fixture_names("inbound"))
def test_inbound_fixture_parses_to_the_expected_inbound(name: str) -> None:
    fixture = load(f"inbound/{name}")
    twilio = connector()
    request = fixture_request(fixture)
    twilio.verify(request)
    [inbound] = twilio.parse(request)
    assert isinstance(inbound, Inbound)
    assert inbound.provider == "twilio"
    decoded = parse_qs(request.body.decode(), keep_blank_values=True)
    assert inbound.raw == {k: v[0] if len(v) == 1 else v for k, v in decoded.items()}
    json.dumps(inbound.meta), json.dumps(inbound.raw)  # JSON-safe
    for field, value in INBOUND_EXPECTED[name].items():
        if field == "attachments":
            assert [(a.content_type, a.url) for a in inbound.attachments] == value
        else:
            assert getattr(inbound, field) == value, field


def test_whatsapp_referral_is_normalised_into_meta() -> None:
    fixture = load("inbound/whatsapp_ctwa_referral_german_chatwoot.json")
    [inbound] = connector().parse(fixture_request(fixture))
    assert inbound.meta["referral"] == fixture["expected"]["referral"]


def test_referral_num_media_alone_is_not_a_referral() -> None:
    fixture = load("inbound/whatsapp_interactive_button_reply_call_permission_twilio-docs.json")
    [inbound] = connector().parse(fixture_request(fixture))
    assert "referral" not in inbound.meta
    assert inbound.meta["button"] == {"text": "VOICE_CALL_REQUEST", "payload": "REJECTED"}
    assert inbound.meta["wa_id"] == "5524987654321"
    assert inbound.meta["message_type"] == "interactive"


def test_bsuid_sender_keeps_its_user_ids_and_username() -> None:
    [inbound] = connector().parse(fixture_request(load("inbound/whatsapp_bsuid_only_sender_chatwoot.json")))
    assert inbound.meta["whatsapp_user_id"] == "IN.2081978709342942"
    assert inbound.meta["parent_whatsapp_user_id"] == "IN.ENT.9081726354"
    assert inbound.meta["username"] == "muhsin"


def test_location_without_body_becomes_meta_and_a_readable_text() -> None:
    [inbound] = connector().parse(fixture_request(load("inbound/whatsapp_location_chatwoot.json")))
    assert inbound.meta["location"] == {"latitude": 12.160894393921, "longitude": 75.265205383301}
    assert "12.160894393921" in inbound.text and "75.265205383301" in inbound.text


def test_location_with_label_and_address_on_whatsapp() -> None:
    [inbound] = connector().parse(sms(From="whatsapp:+15551230000", To="whatsapp:+15559870000",
                                      Latitude="48.85", Longitude="2.35", Label="Shop",
                                      Address="1 Rue X", MessageType="location"))
    assert inbound.meta["location"] == {"latitude": 48.85, "longitude": 2.35,
                                        "address": "1 Rue X", "label": "Shop"}
    assert inbound.text.startswith("📍 Location: Shop, 1 Rue X")


def test_button_without_body_uses_the_button_text() -> None:
    [inbound] = connector().parse(sms(From="whatsapp:+15551230000", ButtonText="Yes please",
                                      ButtonPayload="confirm"))
    assert inbound.text == "Yes please"
    assert inbound.meta["button"] == {"text": "Yes please", "payload": "confirm"}


def test_reply_context_is_kept_as_the_replied_provider_id() -> None:
    [inbound] = connector().parse(sms(From="whatsapp:+15551230000", Body="this one",
                                      OriginalRepliedMessageSid="SM" + "b" * 32))
    assert inbound.meta["reply_to_provider_id"] == "SM" + "b" * 32


def test_media_without_num_media_is_still_found() -> None:
    [inbound] = connector().parse(sms(MediaUrl0="https://x/a.jpg", MediaContentType0="image/jpeg"))
    assert [(a.content_type, a.url) for a in inbound.attachments] == [("image/jpeg", "https://x/a.jpg")]


@pytest.mark.parametrize(
    ("body", "flag"),
    [("STOP", FLAG_OPT_OUT), ("stop", FLAG_OPT_OUT), ("  Stop \n", FLAG_OPT_OUT),
     ("STOPALL", FLAG_OPT_OUT), ("unsubscribe", FLAG_OPT_OUT), ("Cancel", FLAG_OPT_OUT),
     ("END", FLAG_OPT_OUT), ("quit", FLAG_OPT_OUT), ("START", FLAG_OPT_IN), ("unstop", FLAG_OPT_IN),
     ("Yes", FLAG_OPT_IN), ("HELP", FLAG_HELP), ("info", FLAG_HELP)],
)
def test_sms_keywords_set_flags(body: str, flag: str) -> None:
    [inbound] = connector().parse(sms(Body=body))
    assert inbound.flags == frozenset({flag})


@pytest.mark.parametrize("body", ["STOP it", "please stop", "STOP.", "HELPME", "", "yes!"])
def test_keywords_must_be_the_whole_body(body: str) -> None:
    [inbound] = connector().parse(sms(Body=body))
    assert inbound.flags == frozenset()


def test_keywords_on_whatsapp_are_ordinary_text() -> None:
    [inbound] = connector().parse(sms(Body="STOP", From="whatsapp:+15551230000"))
    assert inbound.channel == "whatsapp"
    assert inbound.flags == frozenset()


@pytest.mark.parametrize(
    "form",
    [{}, {"From": "+15551230000", "Body": "no sid"}, {"MessageSid": "SM1", "Body": "no from"},
     {"CallSid": "CA1", "From": "+1555", "CallStatus": "ringing"}],
)
def test_requests_without_message_sid_or_from_are_unsupported(form: dict[str, str]) -> None:
    with pytest.raises(UnsupportedPayload):
        connector().parse(form_request({k: [v] for k, v in form.items()}))


def test_other_twilio_channels_are_unsupported() -> None:
    with pytest.raises(UnsupportedPayload, match="messenger"):
        connector().parse(sms(From="messenger:12345"))


def test_a_status_callback_posted_to_the_message_url_yields_nothing() -> None:
    assert connector().parse(sms(MessageStatus="delivered")) == []


# ---------------------------------------------------------------------------- status

STATUS_EXPECTED: dict[str, dict[str, Any]] = {
    "status_delivered_chatwoot.json": {"status": "delivered", "error_code": None},
    "status_delivered_signed_by_controller_chatwoot.json": {
        "status": "delivered", "provider_message_id": "SM123"},
    "status_failed_chatwoot.json": {"status": "failed", "error_code": None, "error_text": None},
    "status_failed_error_30008_with_message_chatwoot.json": {
        "status": "failed", "error_code": "30008", "error_text": "Unknown error"},
    "status_failed_error_30008_without_message_chatwoot.json": {
        "status": "failed", "error_code": "30008", "error_text": "Unknown error from the carrier"},
    "status_read_chatwoot.json": {"status": "read"},
}


@pytest.mark.parametrize("name", fixture_names("status"))
def test_status_fixture_parses_to_the_expected_update(name: str) -> None:
    fixture = load(f"status/{name}")
    request = fixture_request(fixture)
    connector().verify(request)
    [update] = connector().parse_status(request)
    expected = {"provider_message_id": fixture["params"]["MessageSid"], "channel": "sms",
                "provider": "twilio", **STATUS_EXPECTED[name]}
    for field, value in expected.items():
        assert getattr(update, field) == value, field


@pytest.mark.parametrize(
    ("twilio_status", "ours"),
    [("accepted", "queued"), ("scheduled", "queued"), ("queued", "queued"), ("sending", "queued"),
     ("sent", "sent"), ("delivered", "delivered"), ("read", "read"),
     ("undelivered", "undelivered"), ("failed", "failed"), ("canceled", "failed")],
)
def test_twilio_statuses_map_to_delivery_states(twilio_status: str, ours: str) -> None:
    [update] = connector().parse_status(sms(MessageStatus=twilio_status))
    assert update.status == ours


def test_status_of_a_whatsapp_message_names_channel_and_recipient() -> None:
    [update] = connector().parse_status(sms(
        MessageStatus="undelivered", From="whatsapp:+15559870000", To="whatsapp:+15551230000",
        ErrorCode="63016"))
    assert (update.channel, update.recipient, update.error_code) == ("whatsapp", "+15551230000", "63016")
    assert "24-hour" in (update.error_text or "")


def test_unknown_error_codes_still_get_a_text() -> None:
    [update] = connector().parse_status(sms(MessageStatus="failed", ErrorCode="99999"))
    assert update.error_text == "Twilio error 99999"


def test_inbound_and_unknown_statuses_yield_nothing_and_no_status_is_unsupported() -> None:
    assert connector().parse_status(sms(MessageStatus="received")) == []
    assert connector().parse_status(sms(MessageStatus="teleported")) == []
    with pytest.raises(UnsupportedPayload):
        connector().parse_status(sms(Body="no status"))


# ---------------------------------------------------------------------------- send


@pytest.fixture
async def twilio(twilio_recorder: TwilioRecorder) -> AsyncIterator[TwilioConnector]:
    conn = connector(api_base=twilio_recorder.base_url, status_callback_url=STATUS_URL,
                     default_from="+15550001111")
    yield conn
    await conn.aclose()


def outbound(**fields: Any) -> Outbound:
    base: dict[str, Any] = dict(message_id=1, conversation_id=1, channel="sms", provider="twilio",
                                to="+15551234567", from_address=None, text="hello")
    return Outbound(**{**base, **fields})


async def test_sms_send_posts_to_from_body_media_and_status_callback(
    twilio: TwilioConnector, twilio_recorder: TwilioRecorder
) -> None:
    result = await twilio.send(outbound(attachments=[
        Attachment("image/png", url="https://cdn.example/a.png"),
        Attachment("application/pdf", url="https://cdn.example/b.pdf")]))
    [request] = twilio_recorder.requests
    assert request.method == "POST"
    assert request.path == f"/2010-04-01/Accounts/{TEST_ACCOUNT_SID}/Messages.json"
    assert request.form == {
        "To": ["+15551234567"], "From": ["+15550001111"], "Body": ["hello"],
        "MediaUrl": ["https://cdn.example/a.png", "https://cdn.example/b.pdf"],
        "StatusCallback": [STATUS_URL],
    }
    assert result.provider_message_id.startswith("SM") and len(result.provider_message_id) == 34
    assert result.status == "queued"


async def test_whatsapp_send_prefixes_both_addresses(
    twilio: TwilioConnector, twilio_recorder: TwilioRecorder
) -> None:
    await twilio.send(outbound(channel="whatsapp", to="+5541988887777", from_address="+14155238886"))
    [sent] = twilio_recorder.messages
    assert sent["To"] == ["whatsapp:+5541988887777"]
    assert sent["From"] == ["whatsapp:+14155238886"]


async def test_messaging_service_sender_is_sent_as_messaging_service_sid(
    twilio: TwilioConnector, twilio_recorder: TwilioRecorder
) -> None:
    result = await twilio.send(outbound(channel="whatsapp", from_address="MG" + "1" * 32))
    [sent] = twilio_recorder.messages
    assert sent["MessagingServiceSid"] == ["MG" + "1" * 32]
    assert "From" not in sent
    assert sent["To"] == ["whatsapp:+15551234567"]
    assert result.status == "queued"  # Twilio answers "accepted"


async def test_template_is_sent_as_content_sid_with_variables(
    twilio: TwilioConnector, twilio_recorder: TwilioRecorder
) -> None:
    template = TemplateRef(name="HX" + "c" * 32, variables={"1": "Ana", "2": "#1042"})
    await twilio.send(outbound(channel="whatsapp", text="", template=template))
    [sent] = twilio_recorder.messages
    assert sent["ContentSid"] == ["HX" + "c" * 32]
    assert json.loads(sent["ContentVariables"][0]) == {"1": "Ana", "2": "#1042"}
    assert "Body" not in sent


async def test_rate_limit_then_success_retries_exactly_once(
    twilio: TwilioConnector, twilio_recorder: TwilioRecorder
) -> None:
    twilio_recorder.fail_next(429, headers={"Retry-After": "7"})
    with pytest.raises(SendFailed) as caught:
        await twilio.send(outbound())
    assert caught.value.retryable
    assert caught.value.retry_after == 7.0
    assert caught.value.error_code == "20429"
    result = await twilio.send(outbound())
    assert result.provider_message_id.startswith("SM")
    assert len(twilio_recorder.requests) == 2
    assert len(twilio_recorder.messages) == 1


async def test_unsubscribed_recipient_is_final_and_marks_opted_out(
    twilio: TwilioConnector, twilio_recorder: TwilioRecorder
) -> None:
    twilio_recorder.fail_next(400, code=21610)
    with pytest.raises(SendFailed) as caught:
        await twilio.send(outbound())
    assert (caught.value.retryable, caught.value.opted_out, caught.value.error_code) == (False, True, "21610")
    assert len(twilio_recorder.requests) == 1


@pytest.mark.parametrize("code", [21211, 21614, 63016])
async def test_invalid_number_and_closed_window_are_final_with_the_code(
    twilio: TwilioConnector, twilio_recorder: TwilioRecorder, code: int
) -> None:
    twilio_recorder.fail_next(400, code=code)
    with pytest.raises(SendFailed) as caught:
        await twilio.send(outbound())
    assert (caught.value.retryable, caught.value.opted_out, caught.value.error_code) == (False, False, str(code))


@pytest.mark.parametrize("status", [500, 502, 503])
async def test_server_errors_are_retryable(
    twilio: TwilioConnector, twilio_recorder: TwilioRecorder, status: int
) -> None:
    twilio_recorder.fail_next(status)
    with pytest.raises(SendFailed) as caught:
        await twilio.send(outbound())
    assert caught.value.retryable
    assert caught.value.retry_after is None


async def test_a_dropped_connection_is_retryable(
    twilio: TwilioConnector, twilio_recorder: TwilioRecorder
) -> None:
    twilio_recorder.disconnect_next()
    with pytest.raises(SendFailed) as caught:
        await twilio.send(outbound())
    assert caught.value.retryable
    assert (await twilio.send(outbound())).provider_message_id.startswith("SM")


async def test_an_unreachable_api_is_retryable() -> None:
    with TwilioRecorder() as gone:
        base = gone.base_url
    conn = connector(api_base=base, default_from="+15550001111")
    try:
        with pytest.raises(SendFailed) as caught:
            await conn.send(outbound())
        assert caught.value.retryable
    finally:
        await conn.aclose()


async def test_wrong_credentials_are_final(twilio_recorder: TwilioRecorder) -> None:
    conn = connector(auth_token="wrong", api_base=twilio_recorder.base_url, default_from="+1555")
    try:
        with pytest.raises(SendFailed) as caught:
            await conn.send(outbound())
        assert (caught.value.retryable, caught.value.error_code) == (False, "20003")
    finally:
        await conn.aclose()


async def test_nothing_is_posted_without_a_sender_content_or_public_media_url(
    twilio_recorder: TwilioRecorder,
) -> None:
    conn = connector(api_base=twilio_recorder.base_url)
    try:
        with pytest.raises(SendFailed, match="sender"):
            await conn.send(outbound())
        with pytest.raises(SendFailed, match="empty"):
            await conn.send(outbound(text="", from_address="+1555"))
        with pytest.raises(SendFailed, match="public"):
            await conn.send(outbound(from_address="+1555",
                                     attachments=[Attachment("image/png", data=b"\x89PNG")]))
    finally:
        await conn.aclose()
    assert twilio_recorder.requests == []


async def test_status_callback_from_the_fake_verifies_and_parses(
    twilio: TwilioConnector, twilio_recorder: TwilioRecorder
) -> None:
    result = await twilio.send(outbound(channel="whatsapp"))
    url, form, headers = twilio_recorder.signed_status_callback(
        result.provider_message_id, "undelivered", error_code="63016")
    request = form_request({k: [v] for k, v in form.items()}, url=url, token=None, headers=headers)
    twilio.verify(request)
    [update] = twilio.parse_status(request)
    assert (update.provider_message_id, update.status, update.channel, update.error_code) == (
        result.provider_message_id, "undelivered", "whatsapp", "63016")


def test_whatsapp_replies_outside_the_window_need_a_template() -> None:
    now = datetime(2025, 1, 2, tzinfo=UTC)
    twilio = connector()
    with pytest.raises(Conflict):
        twilio.check_reply(channel="whatsapp", last_customer_at=now - timedelta(hours=25), now=now)
    twilio.check_reply(channel="whatsapp", last_customer_at=now - timedelta(hours=23), now=now)
    twilio.check_reply(channel="whatsapp", last_customer_at=now - timedelta(hours=25), now=now,
                       template=TemplateRef(name="HX1"))
    twilio.check_reply(channel="sms", last_customer_at=None, now=now)


def test_media_credentials_only_for_twilio_hosts() -> None:
    twilio = connector()
    assert twilio.media_auth("https://api.twilio.com/2010-04-01/Accounts/AC/Messages/MM/Media/ME") == (
        TEST_ACCOUNT_SID, TEST_AUTH_TOKEN)
    assert twilio.media_auth("https://evil.example/api.twilio.com") is None


def test_build_from_settings() -> None:
    assert build(Settings()) is None
    built = build(Settings(twilio_account_sid="AC1", twilio_auth_token="t", public_url="https://x.example",
                           twilio_default_from="+1555", help_text="Help!"))
    assert built is not None
    assert built.status_callback_url == "https://x.example/webhooks/twilio/status"
    assert (built.default_from, built.help_text) == ("+1555", "Help!")


def test_the_fake_serves_blocking_clients_too(twilio_recorder: TwilioRecorder) -> None:
    url = f"{twilio_recorder.base_url}/2010-04-01/Accounts/{TEST_ACCOUNT_SID}/Messages.json"
    auth = (TEST_ACCOUNT_SID, TEST_AUTH_TOKEN)
    created = httpx.post(url, data={"To": "+1555", "From": "+1666", "Body": "x"}, auth=auth)
    assert created.status_code == 201 and created.json()["status"] == "queued"
    assert httpx.post(url, data={"To": "+1555", "Body": "x"}, auth=auth).json()["code"] == 21603
    assert httpx.post(url, data={"To": "+1555", "From": "+1666"}, auth=auth).json()["code"] == 21602
    fetched = httpx.get(url.replace(".json", f"/{created.json()['sid']}.json"), auth=auth)
    assert fetched.json()["body"] == "x"
    assert len(twilio_recorder.wait_for(4, timeout=1)) == 4
    with pytest.raises(AssertionError):
        twilio_recorder.wait_for(5, timeout=0.05)


def test_the_messages_api_is_imported_with_the_connector_not_at_the_first_send() -> None:
    import subprocess
    import sys

    probe = ("import sys, connectors.twilio; "
             "print('twilio.rest.api.v2010.account.message' in sys.modules)")
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                          check=True)
    assert done.stdout.strip() == "True"  # nothing left to import on the event loop
