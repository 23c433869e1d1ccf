"""`inbox.forms.parse_form` reads a url-encoded body exactly as `urllib.parse.parse_qs(...,
keep_blank_values=True)` does (it only skips decoding fields that need none)."""

from __future__ import annotations

import random
from urllib.parse import parse_qs, quote, urlencode

from inbox.forms import parse_form

TRICKY = [
    "", "&", "&&a=1&&", "a", "a=", "=", "=x", "a==b", "a=b=c", "a=1&a=2&a=", "a+b=c+d",
    "%2B15551234567=%2b", "x=%zz&y=%", "k=%E2%82%AC%20%ED%95%9C", "k=%ff%fe", "k=100%25",
    "Body=Hello%2C+world%21&From=%2B15551234567&NumMedia=0", "caf%C3%A9=cr%C3%A8me+br%C3%BBl%C3%A9e",
]


def test_tricky_bodies_read_as_parse_qs_reads_them() -> None:
    for text in TRICKY:
        assert parse_form(text) == parse_qs(text, keep_blank_values=True), text


def test_random_forms_read_as_parse_qs_reads_them() -> None:
    rng = random.Random(5)
    alphabet = "ab +=&%/?#é한😀\\x00,.-_~2F"
    for _ in range(3000):
        pairs = [("".join(rng.choice(alphabet) for _ in range(rng.randint(0, 6))),
                  "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 12))))
                 for _ in range(rng.randint(0, 6))]
        plus, percent = urlencode(pairs), urlencode(pairs, quote_via=quote)  # ' ' as + / %20
        for text in (plus, percent, "&".join(k + v for k, v in pairs)):  # the last: raw
            assert parse_form(text) == parse_qs(text, keep_blank_values=True), text
