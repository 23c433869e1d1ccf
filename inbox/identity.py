"""Canonical identities: one person, one value per kind, whatever format they wrote from.

Pure functions; the pipeline uses them to find or create the contact.
"""

from __future__ import annotations

import functools
import re
import unicodedata

import phonenumbers

from inbox.errors import BadInput

_PREFIXES = ("whatsapp:", "sms:", "tel:", "mms:")
_EMAIL = re.compile(r"^[^@\s<>]+@[^@\s<>]+$")


def canonical_phone(raw: str, *, default_region: str = "US") -> str:
    """E.164 for anything `phonenumbers` accepts as a possible number.

    Cached per (raw, region): customers write again and again from the same number, and
    `phonenumbers` takes ~60 us to parse one.

    `(555) 010-2030`, `+15550102030` and `whatsapp:+15550102030` all give
    `+15550102030`. Short codes and alphanumeric senders, which are no phone numbers,
    come back as their digits / upper-cased text so they still identify one sender.
    Raises `BadInput` for an empty value.
    """
    return _canonical_phone(raw, default_region)


@functools.lru_cache(maxsize=4096)
def _canonical_phone(raw: str, default_region: str) -> str:
    value = raw.strip()
    lowered = value.lower()
    for prefix in _PREFIXES:
        if lowered.startswith(prefix):
            value = value[len(prefix):].strip()
            break
    if not value:
        raise BadInput("empty phone number")
    try:
        number = phonenumbers.parse(value, None if value.startswith("+") else default_region)
    except phonenumbers.NumberParseException:
        number = None
    if number is not None and phonenumbers.is_possible_number(number):
        return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)
    digits = re.sub(r"\D", "", value)
    if digits and len(digits) >= 3 and not re.search(r"[A-Za-z]", value):
        # A bare international number written without "+" (WhatsApp wa_id style).
        try:
            number = phonenumbers.parse("+" + digits, None)
            if phonenumbers.is_valid_number(number):
                return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)
        except phonenumbers.NumberParseException:
            pass
        return digits
    return re.sub(r"\s+", "", value).upper()


def canonical_email(raw: str) -> str:
    """Case-folded, NFKC-normalised address; raises `BadInput` if it is not an address."""
    value = unicodedata.normalize("NFKC", raw).strip().strip("<>").strip()
    if not _EMAIL.match(value):
        raise BadInput(f"not an email address: {raw!r}")
    return value.casefold()


def canonical(kind: str, raw: str, *, default_region: str = "US") -> str:
    """The canonical value of an identity of `kind` (phone, email, webchat, whatsapp_user)."""
    if kind == "phone":
        return canonical_phone(raw, default_region=default_region)
    if kind == "email":
        return canonical_email(raw)
    if kind in ("webchat", "whatsapp_user"):
        value = raw.strip()
        if not value:
            raise BadInput(f"empty {kind} identity")
        return value
    raise BadInput(f"unknown identity kind {kind!r}")
