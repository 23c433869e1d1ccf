"""Behaviour of the abstention signals, English and Korean, with tricky negatives."""

from __future__ import annotations

import pytest

from faq.signals import (
    REASONS,
    abstain_reason,
    is_negative_feedback,
    is_smalltalk,
    needs_human,
    wants_human,
)


@pytest.mark.parametrize(
    "text",
    [
        "I want to talk to a person",
        "can i speak to a real human",
        "agent please",
        "Human!",
        "get me a representative",
        "is there a live agent?",
        "please call me back",
        "상담원 연결해주세요",
        "사람이랑 얘기하고 싶어요",
        "상담사분과 통화하고 싶습니다",
        "직원분 연결 부탁드려요",
    ],
)
def test_requests_for_a_person_want_a_human(text: str) -> None:
    assert wants_human(text)


@pytest.mark.parametrize(
    "text",
    [
        "the delivery agent left it at the door",
        "are you a human?",
        "I don't need to talk to anyone, just tell me the return policy",
        "how long does shipping take",
        "is this product good for people with sensitive skin",
        "배송은 얼마나 걸리나요?",
    ],
)
def test_mentions_that_are_not_requests_do_not_want_a_human(text: str) -> None:
    assert not wants_human(text)


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("I was charged twice for order 10234", "payment_problem"),
        ("my card was declined at checkout three times", "payment_problem"),
        ("두 번 결제됐어요 확인 부탁드려요", "payment_problem"),
        ("the return label link gives a 404", "technical_problem"),
        ("the app won't let me pay, it just shows a blank screen", "technical_problem"),
        ("앱에서 결제하려고 하면 오류가 나요", "payment_problem"),
        ("쿠폰 페이지 링크가 안 열려요", "technical_problem"),
        ("my order arrived damaged", "damaged_or_wrong_item"),
        ("you sent me the wrong item", "damaged_or_wrong_item"),
        ("상품이 파손되어서 왔어요", "damaged_or_wrong_item"),
        ("my package says delivered but I never got it", "delivery_problem"),
        ("배송 완료라고 뜨는데 택배를 못 받았어요", "delivery_problem"),
        ("반품 수거 신청했는데 기사님이 3일째 안 오세요", "delivery_problem"),
        ("i returned it 3 weeks ago and still no refund", "overdue"),
        ("환불 신청한지 2주가 넘었는데 아직이에요", "overdue"),
        ("I'm going to sue if I don't get my money back", "legal_threat"),
        ("소비자원에 신고하겠습니다", "legal_threat"),
        ("my account was hacked", "account_security"),
        ("this is ridiculous, worst service ever", "complaint"),
        ("택배 기사님이 불친절해요", "delivery_problem"),
        ("진짜 너무하네요", "complaint"),
        ("where is order 58231", "order_reference"),
        ("주문번호 20231115 확인 부탁드려요", "order_reference"),
        ("please reach me at 010-2345-6789", "contact_details"),
    ],
)
def test_problems_that_need_an_agent_give_a_reason(text: str, reason: str) -> None:
    assert needs_human(text) == reason
    assert reason in REASONS


@pytest.mark.parametrize(
    "text",
    [
        "how long does a refund take",
        "can i still cancel my order?",
        "can i still return it if i wore it once",
        "I entered the wrong address",
        "my coupon code isn't working",
        "is it too late to cancel my order?",
        "does the warranty cover a broken zipper",
        "I never got an order confirmation email",
        "환불은 언제 되나요?",
        "쿠폰 적용이 안 돼요",
        "로그인이 안 돼요",
        "배송 보통 며칠 걸려요",
        "do you ship to 3 countries in 2 days",
        "",
    ],
)
def test_plain_questions_sharing_problem_words_need_no_human(text: str) -> None:
    assert needs_human(text) is None


@pytest.mark.parametrize(
    "text",
    [
        "no",
        "Nope.",
        "no, that's not it",
        "that didn't help",
        "not what I asked",
        "wrong answer",
        "아니요",
        "아뇨 그게 아니라 교환이요",
        "도움이 안 돼요",
        "질문이랑 다른 답이에요",
    ],
)
def test_rejections_are_negative_feedback(text: str) -> None:
    assert is_negative_feedback(text)


@pytest.mark.parametrize(
    "text",
    [
        "no problem",
        "no worries, thanks",
        "is there no free shipping?",
        "nothing arrived yet",
        "not yet received",
        "thanks that helped",
    ],
)
def test_non_rejections_are_not_negative_feedback(text: str) -> None:
    assert not is_negative_feedback(text)


def test_no_thank_you_declines_the_answer() -> None:
    assert is_negative_feedback("아니요 감사합니다")
    assert is_negative_feedback("no thanks")


@pytest.mark.parametrize(
    "text",
    ["hi", "Hello there!", "thanks!!", "thank you so much", "ok 👍", "👍", "👍🙏", "???",
     "안녕하세요", "감사합니다~", "네 알겠습니다", "ㅋㅋㅋㅋ", "good morning", "bye"],
)
def test_greetings_thanks_and_emoji_are_smalltalk(text: str) -> None:
    assert is_smalltalk(text)


@pytest.mark.parametrize(
    "text",
    ["hi, where is my order?", "thanks, but how do I return it?", "ok so when does it ship",
     "안녕하세요 배송 언제 와요?", "감사합니다 환불은 언제 되나요", "asdfgh"],
)
def test_smalltalk_with_a_request_is_not_smalltalk(text: str) -> None:
    assert not is_smalltalk(text)


def test_abstain_reason_reports_the_first_signal_or_none() -> None:
    assert abstain_reason("thanks!") == "smalltalk"
    assert abstain_reason("agent please") == "wants_human"
    assert abstain_reason("that didn't help") == "negative_feedback"
    assert abstain_reason("the return label link gives a 404") == "technical_problem"
    assert abstain_reason("how long does shipping take?") is None
