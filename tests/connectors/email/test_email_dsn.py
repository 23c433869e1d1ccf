"""bounce_status: delivery reports for our own outbound mail."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from connectors.email import bounce_status

Eml = Callable[[str], bytes]


def test_permanent_failure_names_our_message_recipient_status_and_diagnostic(eml: Eml) -> None:
    [update] = bounce_status(eml("mail_dsn_permanent_failure_553_unknown_address"))
    assert (update.channel, update.provider, update.status) == ("email", "email", "failed")
    assert update.recipient == "edwin@zzzzzzz.com"
    assert update.error_code == "5.3.0"
    assert update.error_text == "SMTP; 553 5.3.0 <edwin@zzzzzzz.com>... Unknown E-Mail Address"
    assert update.provider_message_id == "<200712232303.lBNN3jDq002941@mail12.rrrr.com.au>"


def test_delayed_delivery_is_not_a_failure(eml: Eml) -> None:
    assert bounce_status(eml("mail_dsn_delayed_452_mailbox_full")) == []


def test_postfix_dsn_for_gmail_keeps_the_unfolded_diagnostic(eml: Eml) -> None:
    [update] = bounce_status(eml("flanker_bounce_gmail_dsn_5.1.1"))
    assert update.error_code == "5.1.1"
    assert update.error_text is not None
    assert update.error_text.startswith("smtp; 550-5.1.1 The email account that you tried to reach does")
    assert "\n" not in update.error_text
    assert update.provider_message_id == "<20090708054735.GC7578@example.com>"


def test_gmail_plain_text_bounce_without_a_report(eml: Eml) -> None:
    [update] = bounce_status(eml("flanker_bounce_gmail_plaintext_no_dsn"))
    assert update.status == "failed"
    assert update.recipient == "awfawfawfawfawfaw@someserverhere.com"
    assert update.error_code == "5.1.0"
    assert update.provider_message_id == "<CAKsfaBUUGqVZiaMrmH3TRPfq1odQPtM7Ey5YW1SgyJJRHtAjgw@mail.gmail.com>"


def test_office365_bounce_reads_the_returned_headers(eml: Eml) -> None:
    [update] = bounce_status(eml("sisimai_bounce_office365"))
    assert (update.recipient, update.error_code) == ("kijitora@example.com", "5.1.10")
    assert update.provider_message_id == "<FFFFFFFF.EEEEEEEE@example.ed.jp>"


def test_upper_case_delivery_status_part_through_a_list(eml: Eml) -> None:
    [update] = bounce_status(eml("cpython_dsn_disk_quota_multipart_report"))
    assert (update.status, update.error_code) == ("failed", "5.0.0")
    assert update.provider_message_id.startswith("<002001c144a6$8752e060$")


def test_postfix_bounce_with_truncated_original_still_names_the_recipient(eml: Eml) -> None:
    [update] = bounce_status(eml("sisimai_bounce_postfix"))
    assert (update.recipient, update.error_code) == ("r@p351355.pool.example.ne.jp", "5.1.1")
    assert update.provider_message_id == ""


@pytest.mark.parametrize(
    "name",
    ["talon_reply_gmail", "flanker_mdn_read_receipt", "sisimai_autoreply_exchange_out_of_office"],
)
def test_mail_that_is_not_a_bounce_gives_no_update(eml: Eml, name: str) -> None:
    assert bounce_status(eml(name)) == []


def test_garbage_gives_no_update() -> None:
    assert bounce_status(b"not a mail") == []


def test_delivered_action_reports_delivery() -> None:
    raw = (
        b"From: MAILER-DAEMON@mx.example\r\nTo: support@shop.example\r\nSubject: Delivered\r\n"
        b'MIME-Version: 1.0\r\nContent-Type: multipart/report; report-type=delivery-status; boundary="b"\r\n\r\n'
        b"--b\r\nContent-Type: text/plain\r\n\r\nYour message was delivered.\r\n"
        b"--b\r\nContent-Type: message/delivery-status\r\n\r\nReporting-MTA: dns; mx.example\r\n\r\n"
        b"Final-Recipient: rfc822; Ann@Example.com\r\nAction: delivered\r\nStatus: 2.0.0\r\n\r\n"
        b"--b\r\nContent-Type: text/rfc822-headers\r\n\r\nMessage-ID: <ours.1@shop.example>\r\n\r\n"
        b"--b--\r\n"
    )
    [update] = bounce_status(raw)
    assert (update.status, update.recipient, update.provider_message_id) == (
        "delivered", "ann@example.com", "<ours.1@shop.example>"
    )
