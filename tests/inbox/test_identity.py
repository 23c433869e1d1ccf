"""Canonical identities: one person, one value, whatever format they wrote from."""

from __future__ import annotations

import pytest

from inbox.errors import BadInput
from inbox.identity import canonical, canonical_email, canonical_phone


@pytest.mark.parametrize("raw", [
    "(555) 010-2030",
    "555-010-2030",
    "+15550102030",
    "+1 555 010 2030",
    "whatsapp:+15550102030",
    "WhatsApp:+15550102030",
    "tel:+1-555-010-2030",
])
def test_phone_numbers_in_any_format_canonicalise_to_one_e164_value(raw: str) -> None:
    assert canonical_phone(raw) == "+15550102030"


def test_national_phone_number_uses_the_configured_default_region() -> None:
    assert canonical_phone("030 1234567", default_region="DE") == "+49301234567"


def test_international_number_without_plus_is_read_as_e164() -> None:
    # WhatsApp's wa_id carries the country code without "+".
    assert canonical_phone("4915112345678") == "+4915112345678"


def test_short_code_sender_keeps_its_digits() -> None:
    assert canonical_phone("72345") == "72345"


def test_alphanumeric_sender_is_upper_cased_without_spaces() -> None:
    assert canonical_phone("My Shop") == "MYSHOP"


@pytest.mark.parametrize("raw", ["", "   ", "whatsapp:"])
def test_empty_phone_number_is_bad_input(raw: str) -> None:
    with pytest.raises(BadInput):
        canonical_phone(raw)


@pytest.mark.parametrize("raw", [
    "Maria@Example.COM", " maria@example.com ", "<maria@example.com>", "MARIA@EXAMPLE.COM",
])
def test_email_addresses_are_case_folded_and_trimmed(raw: str) -> None:
    assert canonical_email(raw) == "maria@example.com"


def test_email_with_unicode_compatibility_characters_is_nfkc_normalised() -> None:
    # A full-width "Ａ" is the same letter as "a" once NFKC-normalised and case-folded.
    assert canonical_email("\uff21nna@example.com") == "anna@example.com"


@pytest.mark.parametrize("raw", ["not-an-address", "a@b@c", "two words@example.com", ""])
def test_text_that_is_not_an_email_address_is_bad_input(raw: str) -> None:
    with pytest.raises(BadInput):
        canonical_email(raw)


def test_canonical_dispatches_by_kind() -> None:
    assert canonical("phone", "(555) 010-2030") == "+15550102030"
    assert canonical("email", "Jo@Example.com") == "jo@example.com"
    assert canonical("webchat", " v_abc ") == "v_abc"


def test_unknown_identity_kind_is_bad_input() -> None:
    with pytest.raises(BadInput, match="unknown identity kind"):
        canonical("fax", "123")
