"""Text normalisation for FAQ matching (pure; stdlib only).

One job: turn a customer message or an FAQ phrasing into

* a folded string (`fold`) for character-level scorers (rapidfuzz), and
* a list of weighted-matching *terms* (`terms`): stemmed English words with stop
  words removed, SMS shorthand and contractions expanded, general synonyms and
  British spellings mapped to one word (cellphone → phone, colour → color),
  numbers reduced to a class (`#num` for small numbers, `#id` for order-id-like
  ones), and for Korean
  (Hangul) the word with its trailing particle or ending stripped plus its syllable
  bigrams (the same terms as two-syllable words), so that 배송은 / 배송이 / 배송을 /
  배송언제와요 all share 배송.

Nothing here knows about any FAQ; per-FAQ weighting (IDF) lives in the matcher.
"""

from __future__ import annotations

import re
import unicodedata
from functools import lru_cache
from itertools import chain

__all__ = [
    "NEGATION",
    "fold",
    "folded_words",
    "is_hangul",
    "jamo",
    "stem",
    "strip_korean_suffix",
    "surface_terms",
    "terms",
    "word_surface_terms",
    "word_terms",
    "words",
]

# Order ids, tracking numbers and phone numbers are long digit runs; short numbers
# are quantities ("2 weeks", "3일"). Five digits is the shortest order number our
# shop examples use ("order 10234"); years (4 digits) stay quantities.
_ID_DIGITS = 5

_TOKEN_RE = re.compile(
    r"[a-z]+[0-9][a-z0-9]*|[0-9]+[a-z][a-z0-9]*"  # mixed: b4, 2day, 401k, 5th
    r"|[#]?[0-9][0-9\-]*[0-9]|[#]?[0-9]"  # numbers, "#10234", "123-456"
    r"|[a-z]+(?:'[a-z]+)*"  # latin words with inner apostrophes
    r"|[\uac00-\ud7a3]+"  # Hangul syllables
    r"|[\u3131-\u318e]+"  # bare jamo (ㅋㅋ, ㅠㅠ, ㅇㅇ)
)

# SMS shorthand and frequent misspellings → what they stand for (one or more words).
# Only unambiguous forms: "r" → "are" and "u" → "you" are safe in support chats,
# "2"/"4" are not (they are quantities as often as words).
SHORTHAND: dict[str, str] = {
    "u": "you", "ya": "you", "yu": "you", "ur": "your", "urs": "yours", "r": "are",
    "pls": "please", "plz": "please", "pleas": "please", "plss": "please",
    "thx": "thanks", "thnx": "thanks", "thanx": "thanks", "tnx": "thanks", "ty": "thanks",
    "tysm": "thanks", "tks": "thanks",
    "wat": "what", "wut": "what", "wht": "what", "whats": "what is", "y": "why",
    "hw": "how", "hows": "how is", "wen": "when", "whn": "when", "wher": "where",
    "b4": "before", "2day": "today", "2moro": "tomorrow", "tmrw": "tomorrow",
    "tmr": "tomorrow", "tomoro": "tomorrow", "2nite": "tonight",
    "msg": "message", "msgs": "messages", "acct": "account", "acc": "account",
    "pw": "password", "pwd": "password", "passwd": "password", "addr": "address",
    "adress": "address", "pkg": "package", "pckg": "package", "pkge": "package",
    "dont": "do not", "doesnt": "does not", "didnt": "did not", "cant": "can not",
    "cannot": "can not", "wont": "will not", "isnt": "is not", "arent": "are not",
    "wasnt": "was not", "havent": "have not", "hasnt": "has not", "hadnt": "had not",
    "couldnt": "could not", "shouldnt": "should not", "wouldnt": "would not",
    "aint": "is not", "im": "i am", "ive": "i have", "id": "i would", "ill": "i will",
    "youre": "you are", "theyre": "they are", "idk": "i do not know",
    "bc": "because", "cuz": "because", "coz": "because", "becuz": "because",
    "abt": "about", "sth": "something", "smth": "something", "nxt": "next",
    "wk": "week", "wks": "weeks", "hr": "hour", "hrs": "hours", "min": "minute",
    "mins": "minutes", "yr": "year", "yrs": "years", "mo": "month", "mos": "months",
    "hv": "have", "gonna": "going to", "wanna": "want to", "gotta": "have to",
    "kk": "ok", "k": "ok", "okay": "ok", "okey": "ok", "thru": "through",
    "recieve": "receive", "recieved": "received", "shippin": "shipping",
    "delivry": "delivery", "adres": "address", "qty": "quantity", "info": "information",
    "intl": "international", "int'l": "international", "asap": "soon",
    "w/": "with", "w/o": "without", "e-mail": "email", "ph": "phone",
    "cc": "credit card", "gc": "gift card", "promo": "promotion", "xchange": "exchange",
    "exch": "exchange", "refnd": "refund", "rtn": "return", "trk": "track",
    "tracking#": "tracking number", "ord": "order", "ordr": "order",
}

# General English synonyms and British spellings → one representative word, applied
# to terms only (the surface words keep what the customer wrote). Only words that
# mean the same in any support conversation; each group is one sense, so "card" is
# not "cash" and "change" is not "update". Not derived from any benchmark's queries.
_SYNONYM_GROUPS: tuple[tuple[str, ...], ...] = (
    ("phone", "cellphone", "smartphone", "telephone", "iphone"),
    ("buy", "purchase", "purchased", "purchases", "purchasing", "bought"),
    ("fridge", "refrigerator", "refrigerators", "fridges"),
    ("bye", "goodbye", "goodnight", "farewell", "cya"),
    ("photo", "photos", "picture", "pictures", "pic", "pics"),
    ("movie", "movies", "film", "films"),
    ("car", "cars", "automobile", "vehicle", "vehicles"),
    ("plane", "planes", "airplane", "aeroplane"),
    ("start", "begin", "beginning", "began", "commence"),
    ("fix", "repair", "repaired", "repairs", "repairing"),
    ("help", "assist", "assistance", "assisting"),
    ("child", "kid", "kids", "children"),
    ("fast", "quick", "quickly", "faster", "quicker", "speedy", "rapid"),
    ("big", "large", "bigger", "larger", "huge"),
    ("price", "cost", "costs", "prices", "pricing"),
    ("abroad", "overseas"),
    ("near", "nearest", "closest", "nearby"),
    ("mean", "meaning", "means", "definition", "define", "defined"),
    ("song", "songs", "tune", "tunes"),
    ("package", "packages", "parcel", "parcels"),
    ("store", "stores", "shop", "shops"),
    ("remove", "delete", "erase", "removed", "deleted", "erased", "removing", "deleting"),
    ("change", "modify", "alter", "modified", "altered", "changing"),
    ("wrong", "incorrect"),
    ("broken", "broke", "damaged"),
    ("email", "emails", "mail"),
    ("color", "colour", "colors", "colours"),
    ("favorite", "favourite", "favorites", "favourites"),
    ("center", "centre"),
    ("cancelled", "canceled"),
    ("organize", "organise", "organized", "organised"),
    ("realize", "realise"),
    ("recognize", "recognise"),
    ("authorize", "authorise", "authorized", "authorised"),
    ("apologize", "apologise"),
    ("travel", "travelling", "traveling", "travelled", "traveled"),
    ("check", "cheque", "cheques", "checks"),
    ("money", "funds"),
    ("password", "passcode", "passwords", "passcodes"),
    ("refund", "reimburse", "reimbursement", "reimbursed"),
    ("speak", "talk", "talking", "speaking"),
    ("trip", "journey", "trips", "journeys"),
    ("friend", "buddy", "pal", "friends", "buddies"),
    ("boss", "manager", "supervisor"),
    ("steal", "theft"),
    ("rain", "rainy"),
    ("tire", "tyre", "tires", "tyres"),
    ("license", "licence", "licenses", "licences"),
    ("program", "programme", "programs", "programmes"),
    ("catalog", "catalogue"),
    ("jewelry", "jewellery"),
    ("gray", "grey"),
    ("mom", "mum", "mother"),
    ("dad", "father"),
    ("zipcode", "postcode"),
    ("rent", "rental", "rentals"),
    ("income", "salary", "salaries", "earnings", "wage", "wages"),
    ("gas", "fuel", "petrol", "gasoline"),
    ("bot", "robot", "robots", "bots"),
    ("convert", "conversion", "conversions", "converting", "converted"),
    ("hobby", "hobbies", "pastime", "pastimes"),
    ("job", "employment", "occupation"),
    ("smart", "intelligent", "clever"),
    ("funny", "hilarious", "humorous"),
    ("error", "errors", "mistake", "mistakes"),
    ("accent", "dialect"),
    ("location", "whereabouts"),
)
SYNONYMS: dict[str, str] = {w: g[0] for g in _SYNONYM_GROUPS for w in g[1:]}

# English words that carry no topic. Negations ("not", "no", "never") and question
# words stay: "card not working" and "when will my card arrive" depend on them.
STOP_WORDS: frozenset[str] = frozenset(
    """
    a an the i me my mine myself we us our ours you your yours he him his she her it its
    they them their this that these those there here am is are was were be been being
    do does did doing have has had having to of in on at by for from with about into
    onto over under up down out off as than then so too very just also and or but if
    because while s t d ll m ve re can could would should will shall may might must
    please pls hi hello hey thanks thank ok okay yes yeah um uh oh well any some
    get got getting still already really one someone something anything know tell
    need want like
    """.split()
)

# Words we keep but that should never be a term on their own: kept so that the
# shorthand table can point at them, dropped from matching terms.
_SMALLTALK = frozenset({"lol", "haha", "hahaha", "hmm", "ugh", "pls"})

# Korean particles (조사) and endings (어미) that follow a noun or verb stem inside
# one space-separated word. Longest first so 에서는 wins over 는. They carry no
# topic, so 배송은 / 배송이 / 배송을 must all reduce to 배송.
_KO_SUFFIXES: tuple[str, ...] = tuple(
    sorted(
        """
        입니까 습니까 합니까 됩니까 인가요 인데요 는데요 나요 가요 까요 어요 아요 여요 해요
        에요 예요 이에요 세요 으세요 주세요 드려요 할게요 될까요 할까요 했어요 됐어요
        했는데 했는데요 는데 은데 인데 한데 어서 아서 해서 이라서 라서 으니까 니까
        에서는 에서도 에서 에게서 에게 한테서 한테 께서 께 으로는 으로 로는 로
        이랑 랑 하고 이나 나 까지 부터 마다 보다 처럼 만큼 도 만 은 는 이 가 을 를 에 의
        와 과 요 죠 지요 네요 군요 고요 이요 다 니다 ㅂ니다 습니다 합니다 입니다
        """.split(),
        key=len,
        reverse=True,
    )
)

# Korean syllable bigrams that are pure grammar (polite endings, connectives): they
# appear in almost every Korean message and would otherwise look distinctive in a
# mostly-English FAQ, where IDF cannot learn that they are noise.
_KO_STOP_BIGRAMS: frozenset[str] = frozenset(
    """
    세요 어요 아요 해요 나요 가요 까요 니다 습니 합니 입니 는데 은데 인데 데요 에요 예요
    이에 주세 드려 려요 할게 게요 싶어 싶은 싶습 고싶 하고 해주 주시 시나 시겠 겠어 어서
    있나 있어 있을 있는 없나 없어 되나 되요 돼요 되는 하는 하나 한가 인가 건가 나여 했는
    했어 했던 됐어 같아 같은 건지 는지 은지 인지 할까 될까 려고 으려 어야 아야 해야
    """.split()
)

# Korean words that carry no topic (greetings, fillers, pronouns).
_KO_STOP_WORDS: frozenset[str] = frozenset(
    """
    안녕 안녕하세요 안녕하십니까 감사 감사합니다 고맙습니다 저 제 저희 제가 저는 나 내 그
    이거 그거 저거 좀 혹시 그냥 네 예 아 음 어 여기 거기 뭐 어떻게 언제 왜 어디 무엇
    진짜 정말 너무 많이 다시 지금 오늘 ㅋㅋ ㅎㅎ ㅠㅠ ㅜㅜ
    어디서 어디에 어디로 어디쯤 언제쯤 알려 알려줘 알려주세요 알려주실
    """.split()
)

# Korean negation adverbs, the counterpart of English "not" (안 와요 = is not coming).
_KO_NEGATIONS = frozenset({"안", "못", "않아요", "안돼요", "안되요", "않고"})

# One term for every negation: "not", "no", "never" and 안/못 mean the same for
# matching. It cannot collide with a stem ("note" stems to "not").
NEGATION = "!not"
_NEGATIONS = frozenset({"not", "no", "never", "nope", "nothing"})

_HANGUL_RE = re.compile(r"[\uac00-\ud7a3]")
_PUNCT_TABLE = {ord(c): " " for c in "!\"$%&()*+,./:;<=>?@[\\]^_`{|}~¡¿…·•—–“”‘’«»、。，！？"}


def fold(text: str) -> str:
    """Return `text` NFKC-normalised, case-folded, with curly quotes made straight,
    punctuation (except `'`, `#`, `-` inside tokens) turned into spaces and runs
    of whitespace collapsed. Hangul stays precomposed (NFKC composes jamo)."""
    text = unicodedata.normalize("NFKC", text).casefold()
    text = text.replace("\u2019", "'").replace("\u2018", "'").replace("`", "'")
    return " ".join(text.translate(_PUNCT_TABLE).split())


def is_hangul(word: str) -> bool:
    """True when `word` contains at least one Hangul syllable."""
    return _HANGUL_RE.search(word) is not None


def words(text: str) -> list[str]:
    """Return the folded surface words of `text` with shorthand and contractions
    expanded (``"u r"`` → ``you are``, ``"can't"`` → ``can not``) and numbers
    replaced by a class token: ``#id`` for 5+ digit runs (order ids, phones),
    ``#num`` otherwise. Stop words are kept; nothing is stemmed."""
    return folded_words(fold(text))


def folded_words(folded: str) -> list[str]:
    """`words` of a string that is already `fold`-ed (so a caller that needs the
    folded text too folds only once)."""
    return list(chain.from_iterable(map(_token_words, _TOKEN_RE.findall(folded))))


@lru_cache(maxsize=65536)
def _token_words(tok: str) -> tuple[str, ...]:
    """The words of one token of `folded_words` (cached: messages repeat tokens)."""
    if tok[0] == "#" or tok[0].isdigit() and tok[-1].isdigit():
        digits = sum(ch.isdigit() for ch in tok)
        return ("#id" if digits >= _ID_DIGITS else "#num",)
    if "'" in tok:
        tok = _expand_contraction(tok)
        if " " in tok:
            return tuple(tok.split())
    expanded = SHORTHAND.get(tok)
    return (tok,) if expanded is None else tuple(expanded.split())


def _expand_contraction(tok: str) -> str:
    if tok.endswith("n't"):
        base = tok[:-3]
        base = {"ca": "can", "wo": "will", "sha": "shall", "ai": "is"}.get(base, base)
        return f"{base} not"
    head, _, tail = tok.partition("'")
    tail_word = {"m": "am", "re": "are", "ve": "have", "ll": "will", "d": "would"}.get(tail)
    if tail_word is not None:
        return f"{head} {tail_word}"
    return head  # possessive 's and anything odd: keep the word itself


@lru_cache(maxsize=65536)
def stem(word: str) -> str:
    """Return a light English stem: plural, -ed, -ing, -ly, -ment, -ation, then one
    derivational suffix (-al, -ity, -tion, -ance, -ence, -ful) where five letters
    remain, and a final -e removed and a doubled final consonant undoubled, so that
    charge/charged/charges/charging → ``charg``, top/topped/topping → ``top`` and
    withdraw/withdrawal/withdrawals → ``withdraw``. Irregular forms take the stem of
    their base form (made → stem of make).
    Words of three letters or fewer and non-latin words are returned unchanged."""
    irregular = _IRREGULAR.get(word)
    if irregular is not None:
        # The base form goes through the rules too, so made/makes/make all give the
        # stem of "make" (and a word mapped to itself stops here).
        return irregular if irregular == word else stem(irregular)
    if len(word) <= 3 or not word.isascii() or not word.isalpha():
        return word
    w = word
    for suffix, repl in _STEM_RULES:
        if w.endswith(suffix) and len(w) - len(suffix) + len(repl) >= 3:
            w = w[: len(w) - len(suffix)] + repl
            break
    # Then one derivational suffix, on what the inflection left (withdrawals →
    # withdrawal → withdraw), only where a long enough stem remains.
    for suffix, repl in _DERIVATION_RULES:
        if w.endswith(suffix) and len(w) - len(suffix) + len(repl) >= _MIN_DERIVED:
            w = w[: len(w) - len(suffix)] + repl
            break
    if w.endswith("e") and len(w) > 3:
        w = w[:-1]
    if w.endswith("y") and len(w) > 3:
        w = w[:-1] + "i"
    if len(w) > 3 and w[-1] == w[-2] and w[-1] not in "aeiou":
        w = w[:-1]
    return w


# Irregular and short forms a suffix rule cannot reach (English irregular verbs and
# the -y words whose y→i spelling would otherwise split today/todai).
_IRREGULAR: dict[str, str] = {
    "used": "use", "using": "use", "uses": "use", "made": "make", "making": "make",
    "makes": "make", "paid": "pay", "paying": "pay", "pays": "pay", "sent": "send",
    "got": "get", "gotten": "get", "getting": "get", "gets": "get", "went": "go",
    "gone": "go", "goes": "go", "going": "go", "took": "take", "taken": "take",
    "taking": "take", "takes": "take", "bought": "buy", "buying": "buy", "gave": "give",
    "given": "give", "giving": "give", "lost": "lose", "losing": "lose", "stolen": "steal",
    "stole": "steal", "forgot": "forget", "forgotten": "forget", "came": "come",
    "coming": "come", "comes": "come", "left": "leave", "did": "do", "done": "do",
    "does": "do", "saw": "see", "seen": "see", "told": "tell", "thought": "think",
    "kept": "keep", "found": "find", "brought": "bring", "ran": "run", "won": "win",
    "wrote": "write", "written": "write", "spent": "spend", "withdrew": "withdraw",
    "withdrawn": "withdraw", "broke": "break", "broken": "break", "chose": "choose",
    "chosen": "choose", "froze": "freeze", "frozen": "freeze", "held": "hold",
    "today": "today", "yesterday": "yesterday", "holiday": "holiday", "monday": "monday",
    "children": "child", "men": "man", "women": "woman", "people": "person",
}

# Ordered: the first matching suffix wins, longest forms first.
# Derivational suffixes (Porter's steps 2-4, the unambiguous part): approval /
# approve, security / secure, deletion / delete, helpful / help, difference / differ.
_DERIVATION_RULES: tuple[tuple[str, str], ...] = (
    ("iti", ""), ("ity", ""), ("tion", "t"), ("ful", ""), ("ance", ""), ("ence", ""),
    ("al", ""),
)
# A derivational suffix is removed only if at least this many letters remain
# ("station" keeps its suffix rather than become "stat", like "state").
_MIN_DERIVED = 5

_STEM_RULES: tuple[tuple[str, str], ...] = (
    ("ications", "i"), ("ication", "i"), ("izations", "iz"), ("ization", "iz"),
    ("ational", ""), ("ations", ""), ("ation", ""), ("ating", ""), ("ated", ""),
    ("ates", ""), ("ate", ""), ("ments", ""), ("ment", ""),
    ("nesses", ""), ("ness", ""), ("ingly", ""), ("edly", ""), ("ings", ""), ("ing", ""),
    ("ies", "i"), ("ied", "i"), ("sses", "ss"), ("ed", ""), ("ly", ""), ("es", "e"),
    ("ss", "ss"), ("us", "us"), ("is", "is"), ("s", ""),
)


@lru_cache(maxsize=65536)
def strip_korean_suffix(word: str) -> str:
    """Return a Hangul word without its trailing particle or verb ending (배송은 →
    배송, 환불받고싶어요 → 환불받고싶어); at least one syllable is always kept."""
    w = word
    for _ in range(2):  # 에서는요: two layers at most
        for suf in _KO_SUFFIXES:
            if w.endswith(suf) and len(w) > len(suf):
                w = w[: -len(suf)]
                break
        else:
            break
    return w


def _korean_terms(word: str) -> list[str]:
    if word in _KO_NEGATIONS:
        return [NEGATION]
    if word in _KO_STOP_WORDS or (len(word) >= 2 and set(word) <= set("ㅋㅎㅠㅜㄷㅇ")):
        return []
    base = strip_korean_suffix(word)
    if base in _KO_STOP_WORDS:
        return []
    out = [base] if len(base) >= 2 else []
    # Syllable bigrams find the noun inside compounds and spacing-free messages
    # (배송언제와요 → 배송, 언제, ...). They share the word terms' namespace: most
    # Korean nouns are two syllables, so the bigram 반품 of 반품기간 is the same
    # term as the word 반품 in "반품 가능 기간".
    for i in range(len(base) - 1):
        bg = base[i : i + 2]
        if bg not in _KO_STOP_BIGRAMS and bg != base:
            out.append(bg)
    return out


def terms(text: str) -> list[str]:
    """Return the matching terms of `text` in order: stemmed English content words
    (stop words dropped, negation kept as ``not``), number classes, Korean stems and
    Korean syllable bigrams. Duplicates are kept (callers decide
    whether term frequency matters)."""
    return word_terms(words(text))


def word_terms(ws: list[str]) -> list[str]:
    """`terms` of a text whose `words` are `ws` (so they are computed only once)."""
    out = list(chain.from_iterable(map(_word_terms, ws)))
    if not out:
        # Nothing but stop words ("thanks!", "hi there", "yes"): match on the words
        # themselves rather than on nothing, so small-talk entries can still match.
        out = [stem(w) for w in ws if w.isascii() and w[0] != "#"]
    return out


@lru_cache(maxsize=65536)
def _word_terms(w: str) -> tuple[str, ...]:
    """The terms of one word of `word_terms` (cached: messages repeat words)."""
    if w[0] == "#":
        return (w,)
    if is_hangul(w):
        return tuple(_korean_terms(w))
    if w in STOP_WORDS or w in _SMALLTALK or w in _KO_STOP_WORDS:
        return ()
    if w in _NEGATIONS:
        return (NEGATION,)
    if w.isascii():
        return (stem(SYNONYMS.get(w, w).replace("'", "")),)
    return ()


def surface_terms(text: str) -> list[str | None]:
    """Return, for every surface word of `text` (`words`), its English matching term,
    or None for a stop word, small talk or a non-latin word: so two terms are
    neighbours in the message only if nothing stood between them ("gift boxes",
    but not "alerts for brazil")."""
    return word_surface_terms(words(text))


def word_surface_terms(ws: list[str]) -> list[str | None]:
    """`surface_terms` of a text whose `words` are `ws`."""
    out: list[str | None] = []
    for w in ws:
        if w[0] == "#":
            out.append(w)
        elif not w.isascii() or w in STOP_WORDS or w in _SMALLTALK:
            out.append(None)
        elif w in _NEGATIONS:
            out.append(NEGATION)
        else:
            out.append(stem(SYNONYMS.get(w, w).replace("'", "")))
    return out


# Hangul syllable decomposition (Unicode 15, ch. 3.12): syllable = 0xAC00 +
# (lead * 21 + vowel) * 28 + tail.
_LEADS = "ㄱㄲㄴㄷㄸㄹㅁㅂㅃㅅㅆㅇㅈㅉㅊㅋㅌㅍㅎ"
_VOWELS = "ㅏㅐㅑㅒㅓㅔㅕㅖㅗㅘㅙㅚㅛㅜㅝㅞㅟㅠㅡㅢㅣ"
_TAILS = " ㄱㄲㄳㄴㄵㄶㄷㄹㄺㄻㄼㄽㄾㄿㅀㅁㅂㅄㅅㅆㅇㅈㅊㅋㅌㅍㅎ"


@lru_cache(maxsize=65536)
def jamo(word: str) -> str:
    """Return `word` with every Hangul syllable spelled out as its jamo (배송 →
    ㅂㅐㅅㅗㅇ); other characters are kept. Typos in Korean are usually one jamo
    off (배숑), which is one edit here instead of a whole syllable."""
    out: list[str] = []
    for ch in word:
        code = ord(ch) - 0xAC00
        if 0 <= code < 11172:
            lead, rest = divmod(code, 588)
            vowel, tail = divmod(rest, 28)
            out.append(_LEADS[lead])
            out.append(_VOWELS[vowel])
            if tail:
                out.append(_TAILS[tail])
        else:
            out.append(ch)
    return "".join(out)
