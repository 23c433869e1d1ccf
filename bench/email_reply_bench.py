"""Score new-part extraction (quoted history and signatures folded away) on upstream fixtures.

Run from the repository root: `python bench/email_reply_bench.py [--all]`. Prints one row
per case (pass/fail) for the extractor we ship and the overall score; `--all` adds the
columns for `mail-parser-reply` alone and for our rules behind the library, the
comparison that chose the shipped one. Texts are compared whitespace-normalised.

The cases and what each one checks (see shared/fixtures/email/SOURCES.md):
- talon_*.eml (mailgun/talon `test_standard_replies`): the first text/plain part with
  quotes stripped equals "Hello" (iphone and sparrow: the upstream `*_reply_text` file,
  which keeps the signature; talon strips quotes only, so we compare new + signature);
- reply-bodies/ert_*.txt (discourse/email_reply_trimmer): the new part equals the
  `.expected_trimmed.txt` companion (quotes and signatures both trimmed);
- reply-bodies/mpr_*.txt (alfonsrv/mail-parser-reply): the upstream assertions about the
  latest reply's body, turned into contains / not-contains / equals checks on the new
  part. `mpr_multiline_on*` are ours by inference (upstream asserts only the reply count
  or nothing): a body that starts with a quote header has nothing new above it.

The fixtures are read from `$INBOX_SHARED_DIR/fixtures/email` (default: the `shared`
directory next to the repository, as in tests/conftest.py).
"""

from __future__ import annotations

import email
import email.policy
import os
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

_REPO = Path(__file__).resolve().parent.parent
FIXTURES = Path(os.environ.get("INBOX_SHARED_DIR", _REPO.parent / "shared")) / "fixtures" / "email"
REPLY_BODIES = FIXTURES / "reply-bodies"
TARGET = 0.90

# What an extractor returns for one body: (new part, new part + signature).
Extracted = tuple[str, str]
Extractor = Callable[[str], Extracted]


@dataclass(frozen=True)
class Case:
    """One fixture and the checks its upstream suite asserts."""

    name: str
    text: str
    equals: str | None = None            # compared with the new part
    visible_equals: str | None = None    # compared with new + signature (talon)
    contains: tuple[str, ...] = ()
    absent: tuple[str, ...] = ()
    note: str = field(default="", compare=False)

    def check(self, extracted: Extracted) -> tuple[bool, str]:
        """Whether `extracted` passes, and why not."""
        new, visible = (_norm(part) for part in extracted)
        if self.equals is not None and new != _norm(self.equals):
            return False, f"new part {new[:60]!r}"
        if self.visible_equals is not None and visible != _norm(self.visible_equals):
            return False, f"visible {visible[:60]!r}"
        for needle in self.contains:
            if _norm(needle) not in new:
                return False, f"missing {needle[:40]!r}"
        for needle in self.absent:
            if _norm(needle) in new:
                return False, f"kept {needle[:40]!r}"
        return True, ""


def _norm(text: str) -> str:
    return " ".join(text.split())


def _first_plain(raw: bytes) -> str:
    """The first text/plain part, decoded the way the connector decodes it."""
    from connectors.email.mime import parse_message

    return str(parse_message(raw, our_addresses=()).meta.get("full_text", ""))


def load_cases() -> list[Case]:
    """Every case from the fixture directories, in a stable order."""
    cases: list[Case] = []
    special = {
        "talon_reply_iphone.eml": "talon_iphone_reply_text.expected.txt",
        "talon_reply_sparrow.eml": "talon_sparrow_reply_text.expected.txt",
    }
    for path in sorted(FIXTURES.glob("talon_reply_*.eml")):
        expected = "Hello"
        if path.name in special:
            expected = (REPLY_BODIES / special[path.name]).read_text("utf-8").strip()
        text = _first_plain(path.read_bytes())
        cases.append(Case(path.stem, text, visible_equals=expected))
    for path in sorted(REPLY_BODIES.glob("ert_*.txt")):
        if path.name.endswith(".expected_trimmed.txt"):
            continue
        expected = path.with_name(path.stem + ".expected_trimmed.txt").read_text("utf-8")
        cases.append(Case(path.stem, path.read_text("utf-8"), equals=expected))
    for name, checks in _MPR.items():
        text = (REPLY_BODIES / f"{name}.txt").read_text("utf-8")
        cases.append(Case(name, text, **checks))
    return cases


_MPR: dict[str, dict[str, Any]] = {
    "mpr_email_1_3": {
        "contains": ("Oh thanks.", "Having the function would be great."),
        "absent": ("Russell Brown wrote", "-Abhishek Kona", "Riak bucket"),
    },
    "mpr_email_2_1": {"contains": ("Outlook with a reply",), "absent": ("Google Apps Sync",)},
    "mpr_email_danish_1": {
        "contains": ("Hej Peter,", "Tak for din mail."),
        "absent": ("Med venlig hilsen", "Hej Anders"),
    },
    "mpr_email_danish_2": {
        "contains": ("Jeg har modtaget filerne.",),
        "absent": ("Hilsen Søren", "Her er filerne du bad om."),
    },
    "mpr_email_headers_no_delimiter": {"equals": "And another reply!"},
    "mpr_email_ja_1_1": {"contains": ("こんにちは",)},
    "mpr_email_ja_1_2": {
        "contains": ("お世話になっております。織田です。", "それでは 11:00 にお待ちしております。"),
        "absent": ("かしこまりました", "明日の 11:00 でお願いいたします"),
    },
    "mpr_email_nl_1_2": {
        "contains": ("Outlook met een antwoord",),
        "absent": ("Google Apps Sync",),
    },
    "mpr_email_pl_1_2": {
        "contains": ("Czesc Anno,", "Jak się masz?"),
        "absent": ("Dnia 28 lutego 2023", "Wszystko w porządku"),
    },
    "mpr_email_sent_from_iPhone": {"equals": "Here is another email"},
    "mpr_email_swedish_1": {
        "contains": ("Ursäkta mitt sena svar!",),
        "absent": ("Jag har försökt",),
    },
    "mpr_multiline_on": {"equals": ""},
    "mpr_multiline_on_de": {"equals": "Am heutigen Tage"},
}


def ours(text: str) -> Extracted:
    """The shipped extractor."""
    from connectors.email.quotes import split_reply

    parts = split_reply(text)
    return parts.new, parts.visible


def library(text: str) -> Extracted:
    """`mail-parser-reply` alone, every language it knows."""
    from mailparser_reply import EmailReplyParser  # type: ignore[import-untyped]
    from mailparser_reply.constants import MAIL_LANGUAGES  # type: ignore[import-untyped]

    languages = [lang for lang in MAIL_LANGUAGES if lang != "david"]
    replies = EmailReplyParser(languages=languages).read(text).replies
    if not replies:
        return "", ""
    return str(replies[0].body), str(replies[0].full_body)


def library_then_ours(text: str) -> Extracted:
    """The library's latest reply, then our rules over what it kept."""
    lib_new, lib_visible = library(text)
    new, _ = ours(lib_new)
    _, visible = ours(lib_visible)
    return new, visible


def score(extractor: Extractor, cases: list[Case] | None = None) -> tuple[float, list[tuple[Case, bool, str]]]:
    """The share of cases `extractor` passes, and each case's outcome."""
    cases = cases if cases is not None else load_cases()
    rows = []
    for case in cases:
        try:
            ok, why = case.check(extractor(case.text))
        except Exception as exc:  # a crash is a failed case, not a failed bench
            ok, why = False, f"raised {exc!r}"
        rows.append((case, ok, why))
    return sum(ok for _, ok, _ in rows) / len(rows), rows


def main(argv: list[str]) -> int:
    sys.path.insert(0, str(_REPO))
    cases = load_cases()
    columns: dict[str, Extractor] = {"ours": ours}
    if "--all" in argv:
        columns = {"ours": ours, "mail-parser-reply": library, "library+ours": library_then_ours}
    results = {name: score(fn, cases) for name, fn in columns.items()}
    width = max(len(case.name) for case in cases)
    print(f"{'case':<{width}}  " + "  ".join(f"{name:<17}" for name in columns) + "  why (ours)")
    for i, case in enumerate(cases):
        cells = ["pass" if results[name][1][i][1] else "FAIL" for name in columns]
        why = results["ours"][1][i][2]
        print(f"{case.name:<{width}}  " + "  ".join(f"{c:<17}" for c in cells) + f"  {why}")
    print()
    for name, (ratio, rows) in results.items():
        passed = sum(ok for _, ok, _ in rows)
        print(f"{name:<17} {passed}/{len(rows)} = {ratio:.1%}")
    return 0 if results["ours"][0] >= TARGET else 1


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
