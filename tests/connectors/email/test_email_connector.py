"""EmailConnector: webhook authentication, parsing through the protocol, SMTP sending
against a real aiosmtpd server on a free port."""

from __future__ import annotations

import email
import email.policy
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, Envelope, LoginPassword

from connectors.email import EmailConnector, SmtpSettings, build
from inbox.errors import SendFailed, SignatureInvalid
from inbox.ports import Connector
from inbox.types import FLAG_BOUNCE, Outbound, ThreadHints, WebhookRequest

SECRET = "hook-secret-0123"
OURS = ("support@shop.example",)


def _connector(smtp: SmtpSettings | None = None, secret: str | None = SECRET) -> EmailConnector:
    return EmailConnector(
        secret=secret, addresses=OURS, smtp=smtp, default_from="Shop Support <support@shop.example>"
    )


def _request(body: bytes, **headers: str) -> WebhookRequest:
    return WebhookRequest(
        method="POST", url="https://inbox.example/webhooks/email",
        headers={k.lower().replace("_", "-"): v for k, v in headers.items()}, body=body,
    )


# -- verify -----------------------------------------------------------------------------


def test_connector_satisfies_the_protocol() -> None:
    assert isinstance(_connector(), Connector)
    assert (EmailConnector.provider, EmailConnector.channels) == ("email", ("email",))


@pytest.mark.parametrize(
    "headers",
    [{"authorization": f"Bearer {SECRET}"}, {"authorization": f"bearer  {SECRET} "}, {"x_inbox_email_secret": SECRET}],
)
def test_verify_accepts_the_secret_as_bearer_or_header(headers: dict[str, str]) -> None:
    _connector().verify(_request(b"", **headers))


@pytest.mark.parametrize(
    "headers",
    [{}, {"authorization": "Bearer wrong"}, {"authorization": f"Basic {SECRET}"}, {"x_inbox_email_secret": SECRET + "x"}],
)
def test_verify_refuses_a_missing_or_wrong_secret(headers: dict[str, str]) -> None:
    with pytest.raises(SignatureInvalid):
        _connector().verify(_request(b"", **headers))


def test_without_a_configured_secret_everything_is_refused() -> None:
    with pytest.raises(SignatureInvalid, match="INBOX_EMAIL_SECRET is unset"):
        _connector(secret=None).verify(_request(b"", authorization="Bearer "))


def test_parse_and_parse_status_on_one_bounce_request(eml: Callable[[str], bytes]) -> None:
    request = _request(eml("flanker_bounce_gmail_dsn_5.1.1"), authorization=f"Bearer {SECRET}")
    connector = _connector()
    connector.verify(request)
    [inbound] = connector.parse(request)
    assert FLAG_BOUNCE in inbound.flags
    [update] = connector.parse_status(request)
    assert update.provider_message_id == "<20090708054735.GC7578@example.com>"


def test_build_reads_core_settings_by_attribute() -> None:
    @dataclass
    class FakeSettings:
        smtp_host: str | None = "mail.shop.example"
        smtp_port: int = 2525
        smtp_username: str | None = None
        smtp_password: str | None = None
        smtp_starttls: bool = True
        smtp_tls: bool = False
        smtp_from: str = "support@shop.example"
        email_addresses: tuple[str, ...] = OURS
        email_secret: str | None = "x"
        secret_key: str = "k"

    connector = build(FakeSettings())
    assert connector is not None and connector.smtp is not None and connector.smtp.port == 2525
    assert build(FakeSettings(smtp_host=None, email_secret=None)) is None


# -- send against a real SMTP server ---------------------------------------------------------


@dataclass
class Recorder:
    """aiosmtpd handler that records what it got, optionally refusing first."""

    refuse_data: list[str] = field(default_factory=list)  # replies to use for the next DATAs
    refuse_rcpt: dict[str, str] = field(default_factory=dict)
    received: list[tuple[str, list[str], bytes]] = field(default_factory=list)

    async def handle_RCPT(self, server: Any, session: Any, envelope: Envelope, address: str, options: list[str]) -> str:
        if address in self.refuse_rcpt:
            return self.refuse_rcpt[address]
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Envelope) -> str:
        if self.refuse_data:
            return self.refuse_data.pop(0)
        self.received.append((str(envelope.mail_from), list(envelope.rcpt_tos), envelope.original_content or b""))
        return "250 Message accepted"


@pytest.fixture
def smtp_server(free_port: Callable[[], int]) -> Iterator[tuple[Recorder, int]]:
    recorder = Recorder()
    port = free_port()
    controller = Controller(recorder, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield recorder, port
    finally:
        controller.stop()


def _outbound(**overrides: Any) -> Outbound:
    base: dict[str, Any] = dict(
        message_id=1, conversation_id=42, channel="email", provider="email", to="ann@example.com",
        from_address="support@shop.example", text="Your parcel left today.",
        thread=ThreadHints(message_id="<c1@mail.example>", subject="Where is my order?"),
        idempotency_key="msg-1",
    )
    base.update(overrides)
    return Outbound(**base)


def _plain(port: int, **kw: Any) -> SmtpSettings:
    return SmtpSettings(host="127.0.0.1", port=port, starttls=False, timeout=5.0, **kw)


async def test_send_delivers_a_threaded_reply_with_a_reply_token(smtp_server: tuple[Recorder, int]) -> None:
    recorder, port = smtp_server
    connector = _connector(_plain(port))
    result = await connector.send(_outbound())
    [(mail_from, rcpts, raw)] = recorder.received
    assert (mail_from, rcpts) == ("support@shop.example", ["ann@example.com"])
    msg = email.message_from_bytes(raw, policy=email.policy.default)
    assert result.provider_message_id == msg["Message-ID"] and result.status == "sent"
    assert msg["From"] == "Shop Support <support@shop.example>"
    assert (msg["In-Reply-To"], msg["Subject"]) == ("<c1@mail.example>", "Re: Where is my order?")
    assert msg["Auto-Submitted"] is None
    # The customer's answer to our Reply-To comes back to the right conversation.
    reply_to = str(msg["Reply-To"])
    [inbound] = connector.parse_raw(
        f"From: ann@example.com\r\nTo: {reply_to}\r\nSubject: Re: x\r\n\r\nthanks\r\n".encode()
    )
    assert inbound.recipient == "support@shop.example"
    # parse_raw checks the token and hands the core the conversation it proves.
    assert inbound.thread.reply_token == "42"


async def test_bot_answer_goes_out_auto_submitted(smtp_server: tuple[Recorder, int]) -> None:
    recorder, port = smtp_server
    await _connector(_plain(port)).send(_outbound(idempotency_key="bot:faq:17"))
    msg = email.message_from_bytes(recorder.received[0][2], policy=email.policy.default)
    assert msg["Auto-Submitted"] == "auto-replied"


async def test_451_is_retryable_and_the_retry_succeeds(smtp_server: tuple[Recorder, int]) -> None:
    recorder, port = smtp_server
    recorder.refuse_data.append("451 4.3.0 Try again later")
    connector = _connector(_plain(port))
    with pytest.raises(SendFailed) as failure:
        await connector.send(_outbound())
    assert failure.value.retryable is True and failure.value.error_code == "451"
    await connector.send(_outbound())
    assert len(recorder.received) == 1


async def test_recipient_refused_with_5xx_is_final(smtp_server: tuple[Recorder, int]) -> None:
    recorder, port = smtp_server
    recorder.refuse_rcpt["gone@example.com"] = "550 5.1.1 No such user"
    with pytest.raises(SendFailed) as failure:
        await _connector(_plain(port)).send(_outbound(to="gone@example.com"))
    assert failure.value.retryable is False and failure.value.error_code == "550"


async def test_recipient_refused_with_4xx_is_retryable(smtp_server: tuple[Recorder, int]) -> None:
    recorder, port = smtp_server
    recorder.refuse_rcpt["busy@example.com"] = "452 4.2.2 Mailbox full"
    with pytest.raises(SendFailed) as failure:
        await _connector(_plain(port)).send(_outbound(to="busy@example.com"))
    assert failure.value.retryable is True


async def test_connection_refused_is_retryable(free_port: Callable[[], int]) -> None:
    with pytest.raises(SendFailed) as failure:
        await _connector(_plain(free_port())).send(_outbound())
    assert failure.value.retryable is True


async def test_without_smtp_settings_send_fails_retryably() -> None:
    with pytest.raises(SendFailed) as failure:
        await _connector(None).send(_outbound())
    assert failure.value.retryable is True


async def test_bad_recipient_address_is_final_without_touching_the_network() -> None:
    with pytest.raises(SendFailed) as failure:
        await _connector(_plain(1)).send(_outbound(to="ann@example.com\r\nBcc: x@y.z"))
    assert failure.value.retryable is False


@pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS")
async def test_login_when_credentials_are_configured(free_port: Callable[[], int]) -> None:
    seen: list[tuple[bytes, bytes]] = []

    def authenticator(server: Any, session: Any, envelope: Any, mechanism: str, data: Any) -> AuthResult:
        if isinstance(data, LoginPassword):
            seen.append((data.login, data.password))
            return AuthResult(success=data.password == b"pw")
        return AuthResult(success=False)

    recorder = Recorder()
    port = free_port()
    controller = Controller(
        recorder, hostname="127.0.0.1", port=port,
        authenticator=authenticator, auth_required=True, auth_require_tls=False,
    )
    controller.start()
    try:
        await _connector(_plain(port, username="shop", password="pw")).send(_outbound())
        assert seen == [(b"shop", b"pw")] and len(recorder.received) == 1
    finally:
        controller.stop()
