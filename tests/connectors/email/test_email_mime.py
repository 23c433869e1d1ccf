"""parse_message on the upstream corpus: no crash, right flags, the facts SOURCES.md asserts."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import pytest

from connectors.email import parse_message
from inbox.errors import UnsupportedPayload
from inbox.types import (
    FLAG_AUTO_REPLY,
    FLAG_BOUNCE,
    FLAG_BROKEN,
    FLAG_BULK,
    FLAG_READ_RECEIPT,
    MACHINE_FLAGS,
)

SHARED = Path(os.environ.get("INBOX_SHARED_DIR", Path(__file__).resolve().parents[4] / "shared"))
ALL_EML = sorted((SHARED / "fixtures" / "email").glob("*.eml"))
OURS = ("support@shop.example", "bob@example.com")

Eml = Callable[[str], bytes]


@pytest.mark.parametrize("path", ALL_EML, ids=[p.stem for p in ALL_EML])
def test_every_fixture_parses_into_an_inbound_with_sender_and_id(path: Path) -> None:
    inbound = parse_message(path.read_bytes(), our_addresses=OURS)
    assert inbound.channel == "email" and inbound.provider == "email"
    assert inbound.sender_kind == "email"
    assert inbound.sender and inbound.sender == inbound.sender.casefold()
    assert inbound.provider_message_id.startswith(("<", "sha256:"))
    assert inbound.text.strip()
    assert isinstance(inbound.meta["full_text"], str) and isinstance(inbound.meta["subject"], str)


MACHINE = {
    "sisimai_autoreply_rfc3834_away": {FLAG_AUTO_REPLY},
    "sisimai_autoreply_exchange_out_of_office": {FLAG_AUTO_REPLY},
    "sisimai_autoreply_exchange_windows-1252_qp": {FLAG_AUTO_REPLY},
    "sisimai_autoreply_html_alternative_precedence_bulk": {FLAG_AUTO_REPLY, FLAG_BULK},
    "mail_dsn_permanent_failure_553_unknown_address": {FLAG_BOUNCE, FLAG_AUTO_REPLY},
    "mail_dsn_delayed_452_mailbox_full": {FLAG_BOUNCE, FLAG_AUTO_REPLY},
    "flanker_bounce_gmail_dsn_5.1.1": {FLAG_BOUNCE, FLAG_AUTO_REPLY},
    "flanker_bounce_gmail_plaintext_no_dsn": {FLAG_BOUNCE},
    "cpython_dsn_disk_quota_multipart_report": {FLAG_BOUNCE, FLAG_BULK},
    "sisimai_bounce_office365": {FLAG_BOUNCE, FLAG_AUTO_REPLY, FLAG_BULK},
    "sisimai_bounce_postfix": {FLAG_BOUNCE, FLAG_AUTO_REPLY},
    "flanker_mdn_read_receipt": {FLAG_READ_RECEIPT},
    "flanker_raw_8bit_latin1_from_header_quoted_reply": {FLAG_BULK},
}


@pytest.mark.parametrize("path", ALL_EML, ids=[p.stem for p in ALL_EML])
def test_machine_mail_is_flagged_and_customer_mail_is_not(path: Path) -> None:
    inbound = parse_message(path.read_bytes(), our_addresses=OURS)
    assert inbound.flags & MACHINE_FLAGS == MACHINE.get(path.stem, set())


def test_truncated_multipart_is_kept_and_flagged_broken(eml: Eml) -> None:
    inbound = parse_message(eml("sisimai_bounce_postfix"), our_addresses=OURS)
    assert FLAG_BROKEN in inbound.flags
    assert "could not\nbe delivered" in inbound.meta["full_text"]


def test_mime_without_boundary_is_read_as_text_and_flagged_broken() -> None:
    raw = (
        b"From: a@example.com\r\nTo: support@shop.example\r\nSubject: x\r\n"
        b"Content-Type: multipart/mixed\r\n\r\nHello there\r\n"
    )
    inbound = parse_message(raw, our_addresses=OURS)
    assert FLAG_BROKEN in inbound.flags
    assert "Hello there" in inbound.text


def test_bad_base64_still_yields_a_message() -> None:
    raw = (
        b"From: a@example.com\r\nSubject: x\r\nMIME-Version: 1.0\r\n"
        b"Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: base64\r\n\r\n"
        b"SGVsbG8gd29ybGQ!!!*\r\n"
    )
    inbound = parse_message(raw, our_addresses=OURS)
    assert inbound.sender == "a@example.com"
    assert FLAG_BROKEN in inbound.flags


@pytest.mark.parametrize(
    "raw",
    [b"", b"   \r\n", b"just some text, no headers", b"\x89PNG\r\n\x1a\n\x00\x00", b"Subject: no sender\r\n\r\nhi",
     b"From: \r\nSubject: empty sender\r\n\r\nhi"],
)
def test_something_that_is_not_a_mail_is_unsupported(raw: bytes) -> None:
    with pytest.raises(UnsupportedPayload):
        parse_message(raw, our_addresses=OURS)


def test_a_mail_with_only_a_from_is_accepted() -> None:
    inbound = parse_message(b"From: Ann <ANN@Example.COM>\r\n\r\nhi\r\n", our_addresses=OURS)
    assert (inbound.sender, inbound.display_name, inbound.text) == ("ann@example.com", "Ann", "hi")
    assert inbound.provider_message_id.startswith("sha256:")
    again = parse_message(b"From: Ann <ANN@Example.COM>\r\n\r\nhi\r\n", our_addresses=OURS)
    assert again.provider_message_id == inbound.provider_message_id


# -- threading ---------------------------------------------------------------------


def test_rfc2822_a2_thread_hints(eml: Eml) -> None:
    first = parse_message(eml("mail_rfc2822_A2_thread_1_original"), our_addresses=OURS)
    second = parse_message(eml("mail_rfc2822_A2_thread_2_reply"), our_addresses=OURS)
    third = parse_message(eml("mail_rfc2822_A2_thread_3_reply_to_reply"), our_addresses=OURS)
    assert (first.thread.message_id, first.thread.in_reply_to, first.thread.references) == (
        "<1234@local.machine.example>", None, ()
    )
    assert (second.thread.message_id, second.thread.in_reply_to, second.thread.references) == (
        "<3456@example.net>", "<1234@local.machine.example>", ("<1234@local.machine.example>",)
    )
    assert (third.thread.message_id, third.thread.in_reply_to, third.thread.references) == (
        "<abcd.1234@local.machine.tld>",
        "<3456@example.net>",
        ("<1234@local.machine.example>", "<3456@example.net>"),
    )
    assert first.provider_message_id == "<1234@local.machine.example>"
    assert second.thread.subject == "Re: Saying Hello"


def test_thunderbird_reply_keeps_both_references_and_unflows_text(eml: Eml) -> None:
    inbound = parse_message(eml("mail_thunderbird_reply_in_reply_to_references"), our_addresses=OURS)
    assert inbound.thread.in_reply_to == "<348F04F142D69C21-291E56D292BC@xxxx.net>"
    assert len(inbound.thread.references) == 2


def test_recipient_and_reply_token_come_from_our_plus_address(eml: Eml) -> None:
    inbound = parse_message(
        eml("chatwoot_gmail_reply_quote_signature_in_reply_to"), our_addresses=("reply@example.com",)
    )
    assert inbound.recipient == "reply@example.com"
    assert inbound.thread.reply_token == "6bdc3f4d-0bec-4515-a284-5d916fdde489"
    assert len(inbound.thread.references) == 2
    assert inbound.text == "Yes, I am providing you step how to reproduce this issue"
    assert "Any update on this?" in inbound.meta["quoted_text"]


def test_bcc_recipient_is_found_in_delivered_to() -> None:
    raw = (
        b"Delivered-To: Support@Shop.example\r\nFrom: a@example.com\r\nTo: friend@example.org\r\n"
        b"Subject: hi\r\n\r\nhello\r\n"
    )
    inbound = parse_message(raw, our_addresses=OURS)
    assert inbound.recipient == "support@shop.example"
    assert inbound.thread.reply_token is None


def test_mail_to_someone_else_has_no_recipient(eml: Eml) -> None:
    inbound = parse_message(eml("mail_rfc2822_A2_thread_1_original"), our_addresses=OURS)
    assert inbound.recipient is None


# -- charsets and headers ------------------------------------------------------------


def test_korean_ks_c_5601_1987_body(eml: Eml) -> None:
    assert parse_message(eml("mail_korean_ks_c_5601-1987_8bit"), our_addresses=OURS).text == "스티해"


def test_japanese_iso_2022_jp_body_and_utf8_encoded_words(eml: Eml) -> None:
    inbound = parse_message(eml("mail_japanese_iso-2022-jp_encoded_word_headers"), our_addresses=OURS)
    assert inbound.meta["full_text"].rstrip("\n") == "すみません。"
    assert inbound.meta["subject"] == "まみむめも"
    assert inbound.meta["to"] == ["raasdnil@gmail.com"]


def test_shift_jis_8bit_body(eml: Eml) -> None:
    inbound = parse_message(eml("mail_japanese_shift_jis_8bit_docomo"), our_addresses=OURS)
    assert "このメールはテスト用のメールです。" in inbound.text


def test_folded_utf8_subject_and_quoted_printable_russian(eml: Eml) -> None:
    inbound = parse_message(eml("flanker_utf8_encoded_word_subject_russian_qp_body"), our_addresses=OURS)
    assert inbound.meta["subject"] == "Simple text. How are you? Как ты поживаешь?"
    assert "А эта линия по-русски." in inbound.text
    assert inbound.recipient == "bob@example.com"


def test_raw_latin1_byte_in_from_header(eml: Eml) -> None:
    inbound = parse_message(eml("flanker_raw_8bit_latin1_from_header_quoted_reply"), our_addresses=OURS)
    assert inbound.display_name == "Ingo Lütkebohle"
    assert inbound.sender == "ingo@blank.pages.de"
    assert inbound.meta["from_header"] == '"Ingo Lütkebohle" <ingo@blank.pages.de>'
    assert "Marc Slemko wrote:" not in inbound.text
    assert "Marc Slemko wrote:" in inbound.meta["quoted_text"]


def test_windows_1252_quoted_printable(eml: Eml) -> None:
    inbound = parse_message(eml("sisimai_autoreply_exchange_windows-1252_qp"), our_addresses=OURS)
    assert "\ufffd" not in inbound.meta["full_text"]


def test_encoded_comma_in_display_name(eml: Eml) -> None:
    inbound = parse_message(eml("mailparser_encoded_word_comma_in_display_name"), our_addresses=OURS)
    assert (inbound.display_name, inbound.sender) == ("LastßlName, FirstName", "comma.name@example.com")
    assert inbound.meta["to"] == ["tony.stark@example.com"]
    assert inbound.meta["cc"] == ["simple@example.net", "john.doe@example.com"]


def test_email_address_used_as_display_name(eml: Eml) -> None:
    inbound = parse_message(eml("mailparser_email_address_as_display_name"), our_addresses=OURS)
    assert (inbound.display_name, inbound.sender) == ("alice@example.com", "bob@example.com")


def test_raw_utf8_emoji_subject(eml: Eml) -> None:
    inbound = parse_message(eml("mail_attachment_pdf"), our_addresses=OURS)
    assert inbound.meta["subject"] == "Another PDF with 🎉 Unicode chars in it 🍿"


# -- attachments and HTML ------------------------------------------------------------


def test_pdf_attachment_bytes_are_kept(eml: Eml) -> None:
    inbound = parse_message(eml("mail_attachment_pdf"), our_addresses=OURS)
    assert len(inbound.attachments) == 1
    pdf = inbound.attachments[0]
    assert pdf.content_type == "application/pdf"
    assert pdf.data is not None and len(pdf.data) == 1026 == pdf.size
    assert "Just attaching another PDF" in inbound.text


def test_non_ascii_attachment_name(eml: Eml) -> None:
    inbound = parse_message(eml("mail_attachment_nonascii_filename"), our_addresses=OURS)
    assert [a.filename for a in inbound.attachments] == ["ciële.txt"]
    assert (inbound.attachments[0].data or b"").rstrip() == b"Hi there."
    assert inbound.text == "This is the first part."


def test_dsn_keeps_the_returned_message_as_an_attachment(eml: Eml) -> None:
    inbound = parse_message(eml("flanker_bounce_gmail_dsn_5.1.1"), our_addresses=OURS)
    assert [a.content_type for a in inbound.attachments] == ["message/rfc822"]
    assert b"Message-ID: <20090708054735.GC7578@example.com>" in (inbound.attachments[0].data or b"")


def test_alternative_gives_plain_text_and_sanitised_html(eml: Eml) -> None:
    inbound = parse_message(eml("talon_reply_gmail"), our_addresses=OURS)
    assert inbound.text == "Hello"
    assert inbound.html is not None and "gmail_quote" in inbound.html


def _mail(html: str, *extra: bytes) -> bytes:
    return (
        b"From: a@example.com\r\nSubject: html\r\nMIME-Version: 1.0\r\n"
        b'Content-Type: multipart/related; boundary="b"\r\n\r\n'
        b"--b\r\nContent-Type: text/html; charset=utf-8\r\n\r\n"
        + html.encode()
        + b"\r\n"
        + b"".join(extra)
        + b"--b--\r\n"
    )


def test_html_only_mail_is_sanitised_and_remote_images_wait_for_a_click() -> None:
    html = (
        '<p onclick="steal()">Hi <b>there</b></p><script>alert(1)</script>'
        '<img src="https://tracker.example/p.gif" onerror="x()">'
        '<img src="cid:logo@shop">'
        '<a href="javascript:alert(1)">bad</a><a href="https://shop.example/">ok</a>'
        '<div style="color: red; background: url(https://tracker.example/bg.png)">x</div>'
        '<iframe src="https://evil.example"></iframe>'
        "<blockquote>Old message</blockquote>"
    )
    image = (
        b"--b\r\nContent-Type: image/png\r\nContent-ID: <logo@shop>\r\n"
        b"Content-Transfer-Encoding: base64\r\n\r\niVBORw0KGgo=\r\n"
    )
    inbound = parse_message(_mail(html, image), our_addresses=OURS)
    out = inbound.html or ""
    for banned in ("<script", "onclick", "onerror", "javascript:", "<iframe", "url(", ' src="https://'):
        assert banned not in out
    assert 'data-remote-src="https://tracker.example/p.gif"' in out
    assert 'src="cid:logo@shop"' in out
    assert 'href="https://shop.example/"' in out and "color:red" in out
    assert inbound.text.startswith("Hi there") and "Old message" not in inbound.text
    assert "Old message" in inbound.meta["quoted_text"]
    [logo] = inbound.attachments
    assert (logo.content_id, logo.inline, logo.data) == ("logo@shop", True, b"\x89PNG\r\n\x1a\n")


# -- auto-reply subjects in several languages -----------------------------------------


@pytest.mark.parametrize(
    "subject",
    [
        "Automatic reply: Your order",
        "Out of Office: back Monday",
        "Abwesenheitsnotiz: Ihre Anfrage",
        "Réponse automatique : absent",
        "Respuesta automática: Pedido",
        "自動応答: お問い合わせ",
        "자동 응답: 문의",
        "Automatisch antwoord: bestelling",
        "RE: Out of office",
    ],
)
def test_out_of_office_subjects_flag_an_auto_reply(subject: str) -> None:
    raw = f"From: a@example.com\r\nSubject: {subject}\r\n\r\nI am away.\r\n".encode()
    assert FLAG_AUTO_REPLY in parse_message(raw, our_addresses=OURS).flags


@pytest.mark.parametrize("subject", ["Out of office hours support?", "Where is my automatic coffee machine?"])
def test_customer_subjects_that_merely_mention_absence_are_not_auto_replies(subject: str) -> None:
    raw = f"From: a@example.com\r\nSubject: {subject}\r\n\r\nHello\r\n".encode()
    assert parse_message(raw, our_addresses=OURS).flags == frozenset()


def test_auto_submitted_no_is_a_person_and_list_unsubscribe_on_a_reply_is_not_bulk() -> None:
    raw = (
        b"From: a@example.com\r\nSubject: Re: order\r\nAuto-Submitted: no\r\n"
        b"In-Reply-To: <x@shop.example>\r\nList-Unsubscribe: <mailto:u@example.com>\r\n\r\nthanks\r\n"
    )
    assert parse_message(raw, our_addresses=OURS).flags == frozenset()


@pytest.mark.parametrize(
    "header", [b"X-Autoreply: yes", b"X-Autorespond: yes", b"Precedence: junk", b"List-Id: <news.shop.example>"]
)
def test_robot_headers_flag_the_mail(header: bytes) -> None:
    raw = b"From: a@example.com\r\nSubject: hello\r\n" + header + b"\r\n\r\nhi\r\n"
    assert parse_message(raw, our_addresses=OURS).flags & MACHINE_FLAGS
