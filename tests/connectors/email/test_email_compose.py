"""compose(): the reply a customer's mail client threads, shows and cannot be tricked by."""

from __future__ import annotations

import email
import email.policy
from email.message import EmailMessage

import pytest

from connectors.email import compose
from connectors.email.compose import MAX_REFERENCES, reply_subject
from connectors.email.tokens import conversation_from_token, reply_token_for
from inbox.types import Attachment, Outbound, ThreadHints


def _outbound(**overrides: object) -> Outbound:
    base: dict[str, object] = dict(
        message_id=7,
        conversation_id=42,
        channel="email",
        provider="email",
        to="ann@example.com",
        from_address="support@shop.example",
        text="Hello Ann,\n\nyour parcel left today.\nTracking: 123 <b>",
        display_name="Ann Example",
        thread=ThreadHints(
            message_id="<c2@mail.example>",
            references=("<root@shop.example>", "<c1@mail.example>"),
            subject="Re: RE: Where is my order?",
        ),
    )
    base.update(overrides)
    return Outbound(**base)  # type: ignore[arg-type]


def _roundtrip(msg: EmailMessage) -> EmailMessage:
    parsed = email.message_from_bytes(msg.as_bytes(), policy=email.policy.default)
    assert isinstance(parsed, EmailMessage)
    return parsed


def test_reply_headers_thread_in_the_customers_client() -> None:
    msg = _roundtrip(
        compose(
            _outbound(),
            from_address="Shop Support <support@shop.example>",
            reply_to="support+c42-abc@shop.example",
            message_id_domain="shop.example",
        )
    )
    assert msg["From"] == "Shop Support <support@shop.example>"
    assert msg["To"] == "Ann Example <ann@example.com>"
    assert msg["Reply-To"] == "support+c42-abc@shop.example"
    assert msg["Subject"] == "Re: Where is my order?"
    assert msg["In-Reply-To"] == "<c2@mail.example>"
    assert msg["References"].split() == ["<root@shop.example>", "<c1@mail.example>", "<c2@mail.example>"]
    assert str(msg["Message-ID"]).startswith("<") and str(msg["Message-ID"]).endswith("@shop.example>")
    assert msg["Date"] is not None and msg["Auto-Submitted"] is None


def test_text_and_generated_html_parts() -> None:
    msg = _roundtrip(compose(_outbound(), from_address="support@shop.example", reply_to=None, message_id_domain="shop.example"))
    assert msg.get_content_type() == "multipart/alternative"
    plain = msg.get_body(("plain",))
    html = msg.get_body(("html",))
    assert plain is not None and html is not None
    assert "your parcel left today." in plain.get_content()
    body = html.get_content()
    assert "<p>Hello Ann,</p>" in body
    assert "your parcel left today.<br>" in body
    assert "123 &lt;b&gt;" in body and "<b>" not in body


def test_given_html_is_used_and_attachments_travel() -> None:
    outbound = _outbound(
        html="<p>Rich</p>",
        attachments=[
            Attachment(content_type="application/pdf", filename="Rechnung-ä.pdf", data=b"%PDF-1.4 x"),
            Attachment(content_type="image/png", filename="map.png", url="https://cdn.example/map.png"),
        ],
    )
    msg = _roundtrip(compose(outbound, from_address="support@shop.example", reply_to=None, message_id_domain="shop.example"))
    assert msg.get_content_type() == "multipart/mixed"
    html = msg.get_body(("html",))
    assert html is not None and html.get_content().strip() == "<p>Rich</p>"
    [pdf] = list(msg.iter_attachments())
    assert pdf.get_filename() == "Rechnung-ä.pdf" and pdf.get_content() == b"%PDF-1.4 x"
    plain = msg.get_body(("plain",))
    assert plain is not None and "map.png: https://cdn.example/map.png" in plain.get_content()


def test_bot_answers_are_marked_auto_submitted() -> None:
    msg = compose(_outbound(), from_address="support@shop.example", reply_to=None, message_id_domain="shop.example", auto=True)
    assert msg["Auto-Submitted"] == "auto-replied"
    assert msg["X-Auto-Response-Suppress"] == "All"


def test_first_mail_without_thread_has_no_threading_headers() -> None:
    msg = compose(_outbound(thread=ThreadHints()), from_address="support@shop.example", reply_to=None, message_id_domain="shop.example")
    assert msg["In-Reply-To"] is None and msg["References"] is None
    assert msg["Subject"] == "Re: your message"


def test_references_are_bounded_but_keep_the_root() -> None:
    refs = tuple(f"<r{i}@x>" for i in range(60))
    msg = compose(
        _outbound(thread=ThreadHints(message_id="<last@x>", references=refs, subject="s")),
        from_address="support@shop.example", reply_to=None, message_id_domain="shop.example",
    )
    ids = str(msg["References"]).split()
    assert len(ids) == MAX_REFERENCES and ids[0] == "<r0@x>" and ids[-1] == "<last@x>"


def test_cr_lf_in_subject_or_name_cannot_inject_headers() -> None:
    outbound = _outbound(
        display_name="Ann\r\nBcc: victim@example.org",
        thread=ThreadHints(message_id="<a@b>", subject="Hi\r\nBcc: victim@example.org\r\n\r\nbody"),
    )
    raw = compose(outbound, from_address="support@shop.example", reply_to=None, message_id_domain="shop.example").as_bytes()
    head = raw.split(b"\r\n\r\n", 1)[0] if b"\r\n\r\n" in raw else raw.split(b"\n\n", 1)[0]
    parsed = email.message_from_bytes(raw, policy=email.policy.default)
    assert parsed["Bcc"] is None
    assert not any(line.lower().startswith(b"bcc:") for line in head.splitlines())
    assert "victim@example.org" in str(parsed["Subject"])


@pytest.mark.parametrize("to", ["ann@example.com\r\nBcc: x@y.z", "a@b.c, d@e.f", "not-an-address", "<a@b.c>"])
def test_recipient_must_be_one_plain_address(to: str) -> None:
    with pytest.raises(ValueError, match="expected one plain email address"):
        compose(_outbound(to=to), from_address="support@shop.example", reply_to=None, message_id_domain="shop.example")


@pytest.mark.parametrize(
    ("subject", "expected"),
    [("Order 5", "Re: Order 5"), ("Re: Order 5", "Re: Order 5"), ("RE: re: AW: Order", "Re: Order"),
     ("Re[2]: Order", "Re: Order"), ("", "Re: your message"), (None, "Re: your message")],
)
def test_reply_subject_never_doubles_re(subject: str | None, expected: str) -> None:
    assert reply_subject(subject) == expected


def test_reply_token_roundtrip_and_forgery() -> None:
    token = reply_token_for(42, secret="s3cret")
    assert conversation_from_token(token, secret="s3cret") == 42
    assert conversation_from_token(token.upper(), secret="s3cret") == 42  # MTAs may lower/upper-case
    assert conversation_from_token(token, secret="other") is None
    assert conversation_from_token(token.replace("c42-", "c43-"), secret="s3cret") is None
    assert conversation_from_token("c42-short", secret="s3cret") is None
    assert conversation_from_token(None, secret="s3cret") is None
    assert reply_token_for(43, secret="s3cret") != token
