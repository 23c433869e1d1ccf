"""Message signals that tell the FAQ auto-answer to stay quiet (pure; stdlib only).

English and Korean, rule-based on purpose: every rule is a phrase a support agent
would recognise, so a false positive can be read and fixed. Each function looks at
one customer message::

    wants_human(text) -> bool            asks for a person ("agent", "상담원 연결")
    needs_human(text) -> str | None      a reason code when the message needs an agent
    is_negative_feedback(text) -> bool   rejects the previous answer ("no", "도움이 안 돼요")
    is_smalltalk(text) -> bool           only greetings / thanks / ok / emoji
    abstain_reason(text) -> str | None   the first of the above that fires, as a code

`needs_human` reason codes (stable strings, safe to store and show to agents):
``order_reference``, ``contact_details``, ``legal_threat``, ``account_security``,
``payment_problem``, ``technical_problem``, ``damaged_or_wrong_item``,
``delivery_problem``, ``overdue``, ``complaint``.

These are deliberately narrow where an FAQ entry covers the same words: "my coupon
code isn't working" and "I entered the wrong address" are FAQ questions, while
"the return label link gives a 404" and "you sent me the wrong item" are not.
"""

from __future__ import annotations

import re
import unicodedata

__all__ = [
    "REASONS",
    "abstain_reason",
    "is_negative_feedback",
    "is_smalltalk",
    "needs_human",
    "wants_human",
]


def _norm(text: str) -> str:
    text = unicodedata.normalize("NFKC", text).casefold()
    text = text.replace("\u2019", "'").replace("\u2018", "'")
    return " ".join(text.split())


def _rx(*patterns: str) -> re.Pattern[str]:
    return re.compile("|".join(f"(?:{p})" for p in patterns))


# --- wants a person -----------------------------------------------------------------

_PERSON = r"(?:a |an |the |some |)(?:real |live |actual |)(?:human|person|people|agent|representative|rep|operator|staff|employee|somebody|someone|manager|supervisor|customer (?:service|support|care))"
_WANTS_HUMAN = _rx(
    rf"\b(?:talk|speak|chat|get through|connect me|transfer me|put me through)\b(?: (?:to|with))? {_PERSON}\b",
    rf"\b(?:need|want|get me|give me|is there) {_PERSON}\b",
    r"^(?:an? )?(?:human|agent|person|representative|operator)(?: please| pls| plz)?[.!? ]*$",
    r"\b(?:real|live|actual) (?:human|person|agent)\b",
    r"\bcall me(?: back)?\b",
    r"상담원|상담사|상담 ?직원|직원(?:분|이랑|과|하고|한테)|사람(?:이랑|과|하고|한테|이 ?(?:답|상담))",
    r"(?:연결|통화|전화)(?:해|좀|을|를|부탁|주세요|해주|요청)",
    r"사람.{0,6}(?:얘기|이야기|대화|통화|상담)",
)
# "delivery agent", "travel agent": an agent we do not mean.
_NOT_PERSON = _rx(
    r"\b(?:delivery|courier|shipping|travel|customs|estate|real estate|user) agent\b",
    r"\b(?:don'?t|do not|no need to|never) (?:need|want) (?:to )?(?:talk|speak|a human|an agent|a person)",
    r"\bare you (?:a )?(?:human|real|bot|robot)\b",
)


def wants_human(text: str) -> bool:
    """True when the message asks to be put through to a person ("agent please",
    "can I speak to a real human", "call me back", "상담원 연결해주세요",
    "사람이랑 얘기하고 싶어요"). False for mentions that are not a request
    ("the delivery agent left it outside", "are you a human?")."""
    t = _norm(text)
    if _NOT_PERSON.search(t):
        return False
    return _WANTS_HUMAN.search(t) is not None


# --- needs a person -----------------------------------------------------------------

# Ordered: the first matching reason is returned, most specific first.
_REASON_RULES: tuple[tuple[str, re.Pattern[str]], ...] = (
    ("legal_threat", _rx(
        r"\b(?:sue|suing|lawsuit|lawyer|attorney|legal action|court|small claims)\b",
        r"\bconsumer (?:protection|rights|agency|council)\b", r"\breport you\b",
        r"\bchargeback\b|\bdispute (?:the|this) (?:charge|payment)\b",
        r"소송|고소|변호사|소비자원|소비자 ?보호|신고(?:할|하겠|합니다)|법적",
    )),
    ("account_security", _rx(
        r"\bhack(?:ed|er)?\b", r"\bunauthori[sz]ed\b", r"\bfraud(?:ulent)?\b",
        r"\bsomeone (?:else )?(?:placed|used|logged|accessed|ordered|changed)\b",
        r"\bi didn'?t (?:place|make|order) (?:this|that|these|an?) (?:order|purchase)",
        r"해킹|도용|명의 ?도용|누가 (?:제 )?(?:계정|카드)",
    )),
    ("payment_problem", _rx(
        r"\bcharged (?:me )?(?:twice|two times|double|2x|again|three times)\b",
        r"\bdouble[- ]?charged?\b", r"\bovercharged?\b", r"\bcharged (?:me )?but\b",
        r"\b(?:payment|transaction|checkout|card)\b.{0,30}\b(?:failed|declined|rejected|error|bounced)\b",
        r"\b(?:declined|rejected)\b.{0,20}\b(?:card|payment)\b",
        r"\bmoney (?:was |has been |got )?(?:taken|deducted|debited|withdrawn)\b",
        r"\b(?:wrong|incorrect) (?:amount|price|charge|total|refund)\b",
        r"\b(?:amount|price|charge|total|refund)(?: amount)? (?:is|was) (?:wrong|incorrect)\b",
        r"\brefunded (?:less|only|the wrong)\b|\bpartial refund\b",
        r"(?:두 ?번|이중|중복) ?(?:결제|청구|승인)", r"결제(?:는|가|이)? ?(?:됐|되었)는데",
        r"결제.{0,8}(?:오류|에러|실패|안 ?돼|안 ?되|취소가 안)", r"(?:카드|결제).{0,6}거절",
        r"(?:금액|환불액).{0,6}(?:틀|달라|적게|잘못)", r"돈만 (?:나가|빠져)",
    )),
    ("technical_problem", _rx(
        r"\b404\b|\b50[023]\b", r"\berror\b", r"\bcrash(?:es|ed|ing)?\b", r"\bblank (?:page|screen)\b",
        r"\bbug(?:gy)?\b|\bglitch", r"\bbroken link\b", r"\binvalid\b",
        r"\b(?:link|page|site|website|app|button|checkout|tracking(?: number| link)?|form)\b"
        r".{0,25}\b(?:doesn'?t|does not|won'?t|will not|isn'?t|is not|not|never|can'?t|cannot) ?(?:work|load|open|opening|loading|working|let me)\b",
        r"\bkeeps? (?:logging me out|crashing|freezing|failing|loading|spinning)\b",
        r"\bwon'?t let me\b", r"\bstuck on\b",
        r"오류|에러|튕겨|먹통|링크.{0,6}(?:안|깨|없)|안 ?열려|접속이 안|페이지가 안|앱이 안",
    )),
    ("damaged_or_wrong_item", _rx(
        r"\b(?:arrived|came|is|was|were|are|got it) (?:damaged|broken|defective|torn|ripped|crushed)\b",
        r"\bdamaged\b|\bdefective\b|\bfaulty\b|\bripped\b|\btorn\b|\bsoaked\b|\bstained\b|\bscratched\b|\bdented\b",
        r"\bwrong (?:item|size|colou?r|product|order|shoe|shirt|one|parcel|package)\b",
        r"\b(?:sent|shipped|delivered|received|got) (?:me )?(?:the |a )?wrong\b",
        r"\bmissing\b", r"\b(?:received|got) only\b|\bonly (?:received|got)\b",
        r"\bhalf (?:of )?my order\b",
        r"파손|깨져|깨진|불량|찢어|찢긴|누락|오배송|다른 상품이|다른 물건이|잘못 (?:왔|배송|보내)|젖어|얼룩|하자",
    )),
    ("delivery_problem", _rx(
        r"\b(?:says|shows|showing|marked|listed)(?: as| it was| it's| it is)? delivered\b",
        r"\b(?:package|parcel|order|delivery|it)\b.{0,15}\bnever (?:arrived|came|showed up|got here)\b",
        r"\bnever (?:got|received) (?:it|my (?:package|parcel|order|item|stuff))\b",
        r"\b(?:lost|stolen) (?:package|parcel|in transit)\b",
        r"\b(?:came|arrived|was|is|were|are|being|running) late\b|\blate (?:delivery|order|package|parcel)\b",
        r"\bleft (?:my |the )?(?:parcel|package|box)\b",
        r"배송 ?완료.{0,15}(?:못|안|없)", r"(?:택배|물건|상품|소포).{0,10}(?:못 ?받|안 ?왔|분실)",
        r"기사님?.{0,10}(?:안 ?오|불친절|안 와)",
    )),
    ("overdue", _rx(
        r"\bstill (?:no|not|nothing|haven'?t|hasn'?t|didn'?t|waiting|hasnt|havent|didnt)\b",
        r"\b(?:it'?s|it has|has been|it's been|been) (?:over )?(?:a|one|two|three|\d+) (?:weeks?|months?|days?)\b",
        r"\bwhere(?:'s| is) my (?:refund|money|order|package|parcel)\b.{0,40}\b(?:weeks?|months?|days?|already)\b",
        r"\bno (?:one|body) (?:has )?(?:replied|answered|responded|got back)\b|\bno (?:reply|response|answer) (?:yet|from)\b",
        r"\d+ ?일째|일주일째|한 ?달째|며칠째|\d+ ?주째|넘었는데|지났는데|아직(?:도)? ?(?:안|못|없|연락)|연락이 없",
    )),
    ("complaint", _rx(
        r"\bridiculous\b|\bworst\b|\bterrible\b|\bhorrible\b|\bawful\b|\bunacceptable\b|\bdisgusting\b",
        r"\bdisappoint(?:ed|ing)\b|\bfurious\b|\bangry\b|\bupset\b|\bfed up\b|\bscam\b|\brip-?off\b",
        r"\brude\b|\bincompetent\b|\buseless service\b|\bcomplain(?:t|ing)?\b|\bnever (?:again|order(?:ing)? again)\b",
        r"너무하|불친절|최악|실망|짜증|화가 나|화나|어이(?:가 )?없|황당|사기|항의|불만",
    )),
)
_ORDER_NUMBER = re.compile(r"(?:order|ord|주문 ?번호|주문)\s*(?:no\.?|number|#|번호)?\s*:?\s*#?\d{4,}|#\d{4,}")
_LONG_NUMBER = re.compile(r"(?<![\d-])\+?\d[\d -]{3,}\d(?![\d-])")

REASONS: frozenset[str] = frozenset(
    {"order_reference", "contact_details", *(r for r, _ in _REASON_RULES)}
)


def needs_human(text: str) -> str | None:
    """Return a reason code (see the module docstring) when the message needs an
    agent even if it shares words with an FAQ entry: it names an order or phone
    number, threatens legal action, reports a security, payment, technical,
    damaged/wrong-item or delivery problem, says something is overdue, or
    complains. Return None for plain questions ("how long does a refund take",
    "can I still cancel my order?", "I entered the wrong address")."""
    t = _norm(text)
    for reason, rx in _REASON_RULES:
        if rx.search(t):
            return reason
    if _ORDER_NUMBER.search(t):
        return "order_reference"
    for m in _LONG_NUMBER.finditer(t):
        digits = re.sub(r"\D", "", m.group())
        if len(digits) >= 9 and (digits.startswith("0") or m.group().startswith("+")):
            return "contact_details"  # phone numbers: 010-..., +1 ...
        if len(digits) >= 5:
            return "order_reference"  # order, tracking and invoice numbers
    return None


# --- negative feedback --------------------------------------------------------------

_NEGATIVE = _rx(
    r"^(?:no|nope|nah|not really|no no|wrong)\b(?![- ](?:problem|worries|worry|rush|need|hurry|big deal|thanks? (?:needed|necessary)))[.!,]*(?:\s|$)",
    r"\b(?:did ?n[o']?t|does ?n[o']?t|does not|did not|not) (?:help|answer|work for me|solve)\b",
    r"\bnot (?:what i (?:asked|meant|wanted|need(?:ed)?)|my question|it|helpful|relevant|the answer)\b",
    r"\b(?:wrong|unhelpful|useless|irrelevant) (?:answer|reply|response)\b",
    r"\bthat(?:'s| is| was)? (?:wrong|useless|not it|irrelevant|unhelpful)\b",
    r"\byou (?:didn'?t|did not|don'?t) (?:understand|get it|answer)\b",
    r"^(?:아니요|아니오|아뇨|아니|아닌데|아니에요|아니예요|노노)(?:[.!,?~ ]|$)",
    r"도움이 ?(?:안|되지 ?않|하나도 ?안)", r"그게 아니라|그게 아니고|그게 아닌데|이게 아니|그런 ?게 아니",
    r"질문(?:이랑|과|하고) ?(?:다르|다른|상관)|엉뚱한|동문서답|답이 ?(?:아니|틀)|잘못 ?(?:이해|답)",
)


def is_negative_feedback(text: str) -> bool:
    """True when the message rejects the previous answer: "no", "nope", "that
    didn't help", "not what I asked", "wrong answer", "아니요", "도움이 안 돼요",
    "그게 아니라...". False for "no problem", "no worries", "no rush" and for
    questions that merely contain "no" ("is there no free shipping?")."""
    t = _norm(text)
    return _NEGATIVE.search(t) is not None


# --- small talk ---------------------------------------------------------------------

_SMALLTALK_PHRASES = sorted(
    """
    good morning|good afternoon|good evening|good night|good day|how are you|how r u|
    how are u|what's up|whats up|thank you|thanks a lot|thanks so much|thank you so much|
    thank you very much|many thanks|much appreciated|appreciate it|got it|sounds good|
    see you|see ya|bye bye|have a nice day|have a good day|take care|no problem|
    no worries|all good|that's great|that helps|that helped|anyone there|is anyone there|
    are you there|you there|all right|nice one|well done|
    안녕하세요|안녕하십니까|안녕|감사합니다|감사해요|감사드려요|고맙습니다|고마워요|고마워|
    알겠습니다|알겠어요|알겠어|알았어요|좋아요|좋습니다|수고하세요|수고하셨습니다|
    수고 많으세요|잘 받았습니다|잘 받았어요|네 감사합니다|넵|네|예|ㅇㅇ|ㅇㅋ|오케이|
    확인했습니다|확인했어요|좋은 하루 되세요|감사|고맙|땡큐
    """.replace("\n", "").split("|"),
    key=len,
    reverse=True,
)
_SMALLTALK_WORDS = frozenset(
    """
    hi hello hey hiya heya yo hallo howdy greetings morning evening afternoon thanks thank
    thx ty tysm thnx cheers ok okay k kk okey sure great cool nice awesome perfect fine
    alright bye goodbye cya lol haha hahaha hehe yes yeah yep yup ya there guys team
    you u so much very again a lot folks everyone all good wow
    """.split()
)
_SMALLTALK_RE = re.compile(
    "|".join(re.escape(p.strip()) for p in _SMALLTALK_PHRASES if p.strip())
)
_WORD_RE = re.compile(r"[a-z0-9']+|[\uac00-\ud7a3]+|[\u3131-\u318e]+")
_LAUGH_RE = re.compile(r"^(?:[ㅋㅎㅠㅜㄷㅇ]+|(?:ha)+h?|(?:he)+|lo+l|xd+)$")


def is_smalltalk(text: str) -> bool:
    """True when the message is only greeting, thanks, acknowledgement, laughter,
    punctuation or emoji ("hi", "thanks!!", "ok 👍", "안녕하세요", "ㅋㅋㅋ", "감사합니다~").
    False as soon as it carries a request ("hi, where is my order?",
    "thanks, but how do I return it?")."""
    t = _SMALLTALK_RE.sub(" ", _norm(text))
    for w in _WORD_RE.findall(t):
        if w in _SMALLTALK_WORDS or _LAUGH_RE.match(w):
            continue
        return False
    return True


def abstain_reason(text: str) -> str | None:
    """The first signal that says "do not auto-answer this", as a code: ``smalltalk``,
    ``wants_human``, ``negative_feedback``, or a `needs_human` reason; None when no
    signal fires. A convenience for the responder, which may weigh them itself."""
    if is_smalltalk(text):
        return "smalltalk"
    if wants_human(text):
        return "wants_human"
    if is_negative_feedback(text):
        return "negative_feedback"
    return needs_human(text)
