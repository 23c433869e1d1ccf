"""New-part extraction: the benchmark score, and the clients the corpus lacks."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import pytest

from connectors.email.quotes import split_reply

BENCH = Path(__file__).resolve().parents[3] / "bench" / "email_reply_bench.py"


def _bench() -> ModuleType:
    spec = importlib.util.spec_from_file_location("email_reply_bench", BENCH)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("email_reply_bench", module)
    spec.loader.exec_module(module)
    return module


def test_reply_extraction_scores_at_least_90_percent_on_the_upstream_fixtures() -> None:
    bench = _bench()
    ratio, rows = bench.score(bench.ours)
    failed = [f"{case.name}: {why}" for case, ok, why in rows if not ok]
    assert len(rows) >= 50
    assert ratio >= bench.TARGET, failed


@pytest.mark.parametrize(
    ("text", "new"),
    [
        (
            "네, 확인했습니다.\n\n2024년 1월 1일 (월) 오후 3:00, 홍길동 <a@b.c>님이 작성:\n> 주문 문의\n",
            "네, 확인했습니다.",
        ),
        ("감사합니다\n\n홍길동님이 작성:\n> 안녕하세요\n", "감사합니다"),
        (
            "了解しました。\n\n2024年1月1日(月) 15:00 山田太郎 <taro@example.jp>:\n> ご注文の件\n",
            "了解しました。",
        ),
        ("承知しました\n\n山田さんのメッセージ:\n> こんにちは\n", "承知しました"),
        (
            "Danke!\n\nAm Mo., 1. Jan. 2024 um 15:00 Uhr schrieb Max Muster <max@example.de>:\n> Hallo\n",
            "Danke!",
        ),
        ("Merci\n\nLe lun. 1 janv. 2024 à 15:00, Jean <jean@example.fr> a écrit :\n> Bonjour\n", "Merci"),
        (
            "See below.\n\n-----Original Message-----\nFrom: Shop <support@shop.example>\n"
            "Sent: Monday, January 1, 2024 3:00 PM\nTo: Ann\nSubject: Your order\n\nHello Ann\n",
            "See below.",
        ),
        (
            "Fine.\n\nFrom: Shop <support@shop.example>\nSent: Monday, January 1, 2024 3:00 PM\n"
            "To: Ann <ann@example.com>\nSubject: Your order\n\nHello Ann\n",
            "Fine.",
        ),
        ("Where is my parcel?\n\nSent from my iPhone\n\nOn 1 Jan 2024, at 15:00, Shop wrote:\n> Hi", "Where is my parcel?"),
        ("Order 1234 please.\n\n-- \nAnn Example\nCEO, Example Ltd\n", "Order 1234 please."),
        ("Thanks, but the parcel never came.\nBest regards,\nAnn", "Thanks, but the parcel never came.\nBest regards,\nAnn"),
        ("No quote at all.\nSecond line.", "No quote at all.\nSecond line."),
        ("", ""),
    ],
)
def test_new_part_for_clients_and_languages_outside_the_corpus(text: str, new: str) -> None:
    assert split_reply(text).new == new


def test_parts_keep_the_signature_and_the_quote_separately() -> None:
    parts = split_reply("Hi\n\n-- \nAnn\n\nOn Mon, Jan 1, 2024 at 3:00 PM Shop <s@shop.example> wrote:\n> old\n")
    assert (parts.new, parts.signature) == ("Hi", "--\nAnn")
    assert parts.quoted.startswith("On Mon, Jan 1, 2024") and "> old" in parts.quoted
    assert parts.visible == "Hi\n\n--\nAnn"


def test_interleaved_answers_keep_the_answers() -> None:
    parts = split_reply("> Which size?\nM please\n> Which colour?\nBlue\n")
    assert parts.new == "M please\nBlue"
    assert "> Which size?" in parts.quoted
