"""The contract every connector keeps, checked on every connector `build_all` makes when
all providers are configured (webchat, twilio, meta, email).

* `provider` names it (its registry key) and `channels` lists known channels;
* `verify` refuses an unsigned request with SignatureInvalid (web chat has no webhook at
  all: it refuses every request as UnsupportedPayload);
* `parse` / `parse_status` return lists of the right type, or raise UnsupportedPayload:
  never anything else, whatever the body (garbage, wrong shapes, mutated real payloads);
* `send` is a coroutine function;
* a valid signed minimal request parses to Inbounds with a provider message id, a sender,
  a known sender kind and a channel the connector carries.
"""

from __future__ import annotations

import copy
import inspect
import json
import random
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlencode

import pytest

import connectors
from inbox.errors import SignatureInvalid, UnsupportedPayload
from inbox.ports import Connector
from inbox.types import CHANNELS, Inbound, StatusUpdate, WebhookRequest
from tests.channels.conftest import META_APP_SECRET, TWILIO_FIXTURES, load
from tests.conftest import make_settings
from tests.fakes.graph_recorder import meta_signature, text_webhook
from tests.fakes.twilio_recorder import TEST_ACCOUNT_SID, TEST_AUTH_TOKEN, twilio_signature

PUBLIC = "https://inbox.example"
EMAIL_SECRET = "contract-email-secret"
SETTINGS = make_settings(
    "sqlite+aiosqlite:///:memory:", public_url=PUBLIC,
    twilio_account_sid=TEST_ACCOUNT_SID, twilio_auth_token=TEST_AUTH_TOKEN,
    twilio_default_from="+15550000001",
    whatsapp_app_secret=META_APP_SECRET, whatsapp_verify_token="verify",
    whatsapp_access_token="token", whatsapp_phone_number_id="106540352242922",
    smtp_host="127.0.0.1", email_secret=EMAIL_SECRET,
)
BUILT: dict[str, Connector] = connectors.build_all(SETTINGS)
PROVIDERS = sorted(BUILT)
WEBHOOK_PATHS = {"twilio": "/webhooks/twilio", "meta": "/webhooks/whatsapp", "email": "/webhooks/email"}
SENDER_KINDS = {"phone", "email", "webchat", "whatsapp_user"}


def request(body: bytes = b"", *, content_type: str | None = None, path: str = "/webhooks/x",
            headers: dict[str, str] | None = None, form: dict[str, list[str]] | None = None) -> WebhookRequest:
    all_headers = {k.lower(): v for k, v in (headers or {}).items()}
    if content_type:
        all_headers["content-type"] = content_type
    return WebhookRequest(method="POST", url=PUBLIC + path, headers=all_headers, body=body,
                          form=form or {})


def form_request(fields: dict[str, Any], *, path: str = "/webhooks/twilio") -> WebhookRequest:
    multi = {k: v if isinstance(v, list) else [v] for k, v in fields.items()}
    return request(urlencode(multi, doseq=True).encode(), content_type="application/x-www-form-urlencoded",
                   path=path, form=multi)


def test_every_provider_is_built_when_configured() -> None:
    assert PROVIDERS == ["email", "meta", "twilio", "webchat"]


@pytest.fixture(params=PROVIDERS)
def connector(request: pytest.FixtureRequest) -> Connector:
    return BUILT[str(request.param)]


def test_provider_channels_and_an_async_send(connector: Connector) -> None:
    assert connector.provider in BUILT and BUILT[connector.provider] is connector
    channels = connector.channels
    assert isinstance(channels, tuple) and channels and set(channels) <= set(CHANNELS)
    assert inspect.iscoroutinefunction(connector.send)
    for name in ("verify", "parse", "parse_status"):
        assert callable(getattr(connector, name))


def test_verify_refuses_unsigned_and_wrongly_signed_requests(connector: Connector) -> None:
    expected = UnsupportedPayload if connector.provider == "webchat" else SignatureInvalid
    path = WEBHOOK_PATHS.get(connector.provider, "/webhooks/x")
    candidates = [
        request(path=path),
        form_request({"MessageSid": "SM1", "From": "+15550108000", "Body": "hi"}, path=path),
        request(json.dumps(text_webhook("hi")).encode(), content_type="application/json", path=path),
        request(b"From: a@b.example\r\n\r\nhi", content_type="message/rfc822", path=path),
        # Present but wrong: another provider's header, a stale signature, a wrong secret.
        request(b"MessageSid=SM1&From=%2B15550108000", content_type="application/x-www-form-urlencoded",
                path=path, headers={"X-Twilio-Signature": "bm9wZQ==", "X-Hub-Signature-256": "sha256=00",
                                    "Authorization": "Bearer wrong", "X-Inbox-Email-Secret": "wrong"}),
    ]
    for candidate in candidates:
        with pytest.raises(expected):
            connector.verify(candidate)


# --------------------------------------------------------------------------- garbage

def _garbage() -> Iterator[WebhookRequest]:
    bodies = [b"", b"\x00", b"\xff\xfe\xfd", b"not json", b"[]", b"{}", b"null", b"0", b'"x"',
              b"{" * 50, b'{"object": "whatsapp_business_account", "entry": {}}',
              b'{"object": "whatsapp_business_account", "entry": [null, 1, "x", []]}',
              b"From: \r\n\r\n", b"Subject: no sender\r\n\r\nbody", b"\r\n\r\n",
              b"MessageSid=&From=&Body=", b"MessageSid=SM1&From=%00&Body=%ff%fe",
              b"MessageSid=SM1&MessageStatus=&SmsStatus=", b"a=1&a=2&a=3", b"=&=&&==",
              "From: \u00e9\u00e8 <>\r\nMessage-ID: <>\r\n\r\n\u2603".encode()]
    content_types = [None, "application/json", "application/x-www-form-urlencoded", "message/rfc822",
                     "text/plain; charset=utf-8"]
    for body in bodies:
        for content_type in content_types:
            yield request(body, content_type=content_type)
    rng = random.Random(20261123)
    for _ in range(60):
        size = rng.choice([1, 7, 64, 1024, 20_000])
        yield request(rng.randbytes(size), content_type=rng.choice(content_types))
    yield from (form_request(f) for f in [
        {"MessageSid": "SM1", "From": "+1", "NumMedia": "-5"},
        {"MessageSid": "SM1", "From": "+1", "NumMedia": "99999999999999999999"},
        {"MessageSid": "SM1", "From": "whatsapp:", "To": "whatsapp:"},
        {"MessageSid": "SM1", "From": "fax:+1555", "Body": "x"},
        {"MessageSid": "SM1", "From": "+1555", "Latitude": "north", "Longitude": "∞"},
        {"MessageSid": "SM1", "MessageStatus": "teleported", "ErrorCode": "x" * 500},
        {"MessageSid": ["SM1", "SM2"], "From": ["+1", "+2"], "Body": ["a", "b"]},
    ])


def _mutations(value: Any, rng: random.Random) -> Iterator[Any]:
    """`value` with one leaf (or container) replaced by something of another type."""
    paths: list[tuple[Any, Any]] = []

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            for key in list(node):
                paths.append((node, key))
                walk(node[key])
        elif isinstance(node, list):
            for index in range(len(node)):
                paths.append((node, index))
                walk(node[index])

    walk(value)
    replacements: list[Any] = [None, 0, -1, 1.5, True, "", "x", [], {}, [None], {"a": None}, "9" * 40]
    for index in range(len(paths)):
        for replacement in rng.sample(replacements, 4):
            clone = copy.deepcopy(value)
            clone_paths: list[tuple[Any, Any]] = []

            def walk_clone(node: Any) -> None:
                if isinstance(node, dict):
                    for key in list(node):
                        clone_paths.append((node, key))
                        walk_clone(node[key])
                elif isinstance(node, list):
                    for i in range(len(node)):
                        clone_paths.append((node, i))
                        walk_clone(node[i])

            walk_clone(clone)
            parent, key = clone_paths[index]
            parent[key] = replacement
            yield clone


def _mutated_meta_bodies() -> Iterator[WebhookRequest]:
    rng = random.Random(7)
    seeds = [text_webhook("hi"), load(TWILIO_FIXTURES.parent / "whatsapp-cloud" / "statuses" /
                                      "status_failed_pywa.json")["body"],
             load(TWILIO_FIXTURES.parent / "whatsapp-cloud" / "messages" / "message_document_pywa.json")["body"]]
    for seed in seeds:
        for mutated in _mutations(seed, rng):
            yield request(json.dumps(mutated).encode(), content_type="application/json")


def _mutated_twilio_forms() -> Iterator[WebhookRequest]:
    fixture = load(TWILIO_FIXTURES / "inbound" / "whatsapp_interactive_button_reply_call_permission_twilio-docs.json")
    base = {k: v for k, v in fixture["params"].items()}
    base.update({"NumMedia": "1", "MediaUrl0": "https://x.example/a.png", "MediaContentType0": "image/png",
                 "Latitude": "1.5", "Longitude": "2.5", "MessageStatus": "delivered", "ErrorCode": "30008"})
    for key in base:
        for value in ["", "\x00", "whatsapp:", "x" * 2000, "-1", "NaN", "☃"]:
            yield form_request({**base, key: value})
        yield form_request({k: v for k, v in base.items() if k != key})


@pytest.mark.parametrize("method", ["parse", "parse_status"])
def test_parse_returns_a_list_or_raises_unsupported_payload_on_any_body(connector: Connector, method: str) -> None:
    kind = Inbound if method == "parse" else StatusUpdate
    parse = getattr(connector, method)
    checked = 0
    for candidate in [*_garbage(), *_mutated_meta_bodies(), *_mutated_twilio_forms()]:
        try:
            result = parse(candidate)
        except UnsupportedPayload:
            continue
        except Exception as exc:  # the contract: nothing else may escape
            pytest.fail(f"{connector.provider}.{method} raised {type(exc).__name__}: {exc} "
                        f"on {candidate.headers.get('content-type')!r} {candidate.body[:200]!r}")
        assert isinstance(result, list), (connector.provider, method, result)
        assert all(isinstance(item, kind) for item in result), (connector.provider, method, result)
        checked += 1
    assert checked or connector.provider == "webchat"


# ------------------------------------------------------------------ valid requests

def _signed_twilio() -> WebhookRequest:
    fields = {"MessageSid": "SMcontract1", "From": "+15550108001", "To": "+15550001111",
              "Body": "Where is my order?", "NumMedia": "0"}
    req = form_request(fields)
    signature = twilio_signature(req.url, fields, TEST_AUTH_TOKEN)
    return WebhookRequest(method="POST", url=req.url, headers={**req.headers, "x-twilio-signature": signature},
                          body=req.body, form=req.form)


def _signed_meta() -> WebhookRequest:
    raw = json.dumps(text_webhook("Where is my order?", message_id="wamid.contract1")).encode()
    return request(raw, content_type="application/json", path="/webhooks/whatsapp",
                   headers={"X-Hub-Signature-256": meta_signature(raw, META_APP_SECRET)})


def _signed_email() -> WebhookRequest:
    raw = (b"From: Ada Customer <ada@customer.example>\r\nTo: support@shop.example\r\n"
           b"Subject: Where is my order?\r\nMessage-ID: <contract1@customer.example>\r\n"
           b"Date: Mon, 23 Nov 2026 10:00:00 +0000\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n"
           b"Where is my order?\r\n")
    return request(raw, content_type="message/rfc822", path="/webhooks/email",
                   headers={"Authorization": f"Bearer {EMAIL_SECRET}"})


SIGNED = {"twilio": _signed_twilio, "meta": _signed_meta, "email": _signed_email}


@pytest.mark.parametrize("provider", sorted(SIGNED))
def test_a_valid_signed_minimal_request_parses_to_inbounds(provider: str) -> None:
    connector = BUILT[provider]
    req = SIGNED[provider]()
    connector.verify(req)  # raises when the signature is not accepted
    inbounds = connector.parse(req)
    assert inbounds, provider
    for inbound in inbounds:
        assert isinstance(inbound, Inbound)
        assert inbound.provider == provider
        assert isinstance(inbound.provider_message_id, str) and inbound.provider_message_id.strip()
        assert isinstance(inbound.sender, str) and inbound.sender.strip()
        assert inbound.sender_kind in SENDER_KINDS, inbound.sender_kind
        assert inbound.channel in connector.channels, inbound.channel
        assert "Where is my order?" in inbound.text
    try:  # a message is no status report: [] or a refusal, both within the contract
        statuses = connector.parse_status(req)
    except UnsupportedPayload:
        return
    assert statuses == [], statuses
