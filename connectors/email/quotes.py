"""Split a plain-text email body into what the sender typed now and what it quotes.

`split_reply(text)` promises three parts whose lines, taken together, are the input's:

    new        what the customer wrote in this message (shown to agents)
    signature  the "-- " block, device lines ("Sent from my iPhone", "Envoyé depuis ...")
               and a lone "-Name" line closing the new part
    quoted     everything folded away: the history under an attribution line
               ("On ... wrote:", "Am ... schrieb ...:", "2024년 ... 님이 작성:", ...),
               Outlook "From:/Sent:/To:" blocks, "-----Original Message-----" and
               forwarded-message separators, and ">"-quoted lines

Why our own rules and not `mail-parser-reply` alone: `bench/email_reply_bench.py` scores
both on the upstream fixtures; the library misses wrapped attribution lines in most
non-English clients, treats the first "Thanks," or "regards," as the start of a
signature (cutting "Thanks, but the parcel never came" down to nothing) and keeps
bottom-posted replies under their quote. Closing formulas ("Best regards, Ann") stay in
`new` on purpose: they are what the customer typed, and usually carry their name.

A message that starts with a quote header (a forward with no comment, a bottom-posted
reply, Outlook clients that put the header on top) has its new part under that header,
up to the next one, with ">" lines removed.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

__all__ = ["ReplyParts", "split_reply"]


@dataclass(frozen=True, slots=True)
class ReplyParts:
    """The parts of one body; `visible` is the new part with its signature."""

    new: str
    signature: str
    quoted: str

    @property
    def visible(self) -> str:
        """The text without quoted history (what a quote-only stripper returns)."""
        return "\n\n".join(part for part in (self.new, self.signature) if part)


_I = re.IGNORECASE
# Verbs closing an attribution line, per language ("<someone> wrote:").
_VERBS = (
    r"wrote|writes|schrieb|a\s+écrit|escribió|escreveu|ha\s+scritto|"
    r"het\s+volgende\s+geschreven|schreef|skrev|napisał(?:\(a\)|a)?|nadesłał|"
    r"написал(?:\(а\)|а)?|пише|napsal(?:\(a\))?|kirjoitti|írta|yazdı"
)
# Attribution lines that begin with a fixed word: they may follow a typed line directly
# ("C'est super !\nLe 4 janv. 2016 ..., a écrit :").
_STARTS_ANYWHERE = [
    re.compile(p, _I)
    for p in (
        r"^-*\s*On\b.{4,300}\bwrote\s*(?::|-+)?$",
        r"^Am\b.{4,300}\bschrieb\b.{0,250}:$",
        r"^Le\b.{4,300}\ba\s+écrit\s*:$",
        r"^El\b.{4,300}\bescribió\s*:$",
        r"^Em\b.{4,300}\bescreveu\s*:$",
        r"^Il\b.{4,300}\bha\s+scritto\s*:$",
        r"^Op\b.{4,300}\b(?:geschreven|schreef)\b.{0,80}:$",
        r"^Den\b.{4,300}\bskrev\b.{0,250}:$",
        r"^(?:Dnia|W\s+dniu)\b.{4,300}\b(?:napisał(?:\(a\)|a)?|nadesłał)\s*:$",
        r"^Dne\b.{4,300}\bnapsal(?:\(a\))?\s*:$",
        r"^在.{4,300}写道\s*[:：]$",
        # A date first: Android "02.04.2012 14:20 пользователь ... написал:", Swedish
        # "4 dec. 2024 kl. 18:36 skrev ...:", Ukrainian "30 серп. 2016 р. ... пише:".
        rf"^\d.{{4,300}}\b(?:{_VERBS})\b.{{0,250}}[:：]$",
        # Japanese Gmail: "2022年1月1日(金) 9:00 田中太郎 <taro.tanaka@example.com>:".
        r"^\d{4}\s*年\s*\d{1,2}\s*月\s*\d{1,2}\s*日.{0,200}@.{0,200}[:：]$",
        r"^.{0,300}(?:のメッセージ|さんは書きました|さんが書きました)\s*[:：]$",
        # Korean Gmail/Naver: "2024년 1월 1일 (월) 오후 3:00, 홍길동 <a@b.c>님이 작성:".
        r"^.{0,300}님이\s*(?:작성|작성하였습니다|쓴\s*글)\s*[:：]?$",
    )
]
# "<name> wrote:" with nothing fixed in front: only after a blank line (or at the top),
# and only when it names an address or a date, or quoted lines follow.
_NAME_FIRST = re.compile(
    rf"^.{{1,250}}\b(?:{_VERBS}|schrieb\s+am\b.{{2,120}})\s*[:：]$", _I
)

_ENDINGS = (":", "：", "-", "wrote", "작성", "작성하였습니다", "글")

_SEPARATOR = re.compile(
    r"^[-=_*\s]{2,}\s*(?:original\s+message|forwarded\s+message|ursprüngliche\s+nachricht|"
    r"weitergeleitete\s+nachricht|message\s+d'origine|message\s+transféré|"
    r"mensaje\s+original|mensaje\s+reenviado|mensagem\s+original|mensagem\s+encaminhada|"
    r"messaggio\s+originale|messaggio\s+inoltrato|oorspronkelijk\s+bericht|"
    r"doorgestuurd\s+bericht|oprindelig\s+meddelelse|videresendt\s+meddelelse|"
    r"opprinnelig\s+melding|ursprungligt\s+meddelande|vidarebefordrat\s+meddelande|"
    r"wiadomość\s+oryginalna|przekazana\s+wiadomość|исходное\s+сообщение|"
    r"пересылаемое\s+сообщение|původní\s+zpráva|alkuperäinen\s+viesti|"
    r"원본\s*메시지|전달된\s*메시지|元のメッセージ|転送されたメッセージ|原始邮件|转发的邮件)"
    r"\s*[-=_*\s]*$"
    r"|^(?:begin\s+forwarded\s+message|anfang\s+der\s+weitergeleiteten\s+nachricht|"
    r"début\s+du\s+message\s+réexpédié)\s*:\s*$",
    _I,
)
# A rule line an Outlook-style header block may sit under.
_RULE = re.compile(r"^\s*(?:_{10,}|-{10,})\s*$")
_FROM_KEYS = (
    "From|Von|De|Van|Fra|Från|Od|От|Від|Da|Lähettäjä|Feladó|Kimden|보낸\\s*사람|"
    "差出人|发件人|寄件者"
)
_OTHER_KEYS = (
    "Sent|Date|To|Subject|Cc|Gesendet|Datum|An|Betreff|Envoyé|À|Objet|Enviado|Fecha|"
    "Para|Asunto|Assunto|Verzonden|Aan|Onderwerp|Sendt|Til|Emne|Skickat|Till|Ämne|"
    "Wysłano|Do|Temat|Отправлено|Дата|Кому|Тема|Inviato|A|Oggetto|Odesláno|Komu|"
    "Předmět|Lähetetty|Vastaanottaja|Aihe|받는\\s*사람|보낸\\s*날짜|날짜|제목|"
    "送信日時|宛先|件名|发送时间|收件人|主题"
)
_HEADER_LINE = re.compile(rf"^\**\s*(?:{_FROM_KEYS}|{_OTHER_KEYS})\s*:\**(?:\s|$)", _I)
_FROM_LINE = re.compile(rf"^\**\s*(?:{_FROM_KEYS})\s*:\**\s*\S", _I)

_DEVICE = re.compile(
    r"^\(?\s*(?:sent\s+(?:from|with|via|using)\b|from\s+my\s+(?:iphone|ipad|android|mobile)|"
    r"get\s+(?:\[?outlook|the\s+\w+\s+app)|envoyé\s+(?:depuis|de\s+mon)|"
    r"von\s+meinem\s+.{1,60}\s+gesendet|gesendet\s+(?:von|mit)\s+|"
    r"diese\s+nachricht\s+wurde\s+von\s+meinem\b|enviado\s+(?:desde|do|de)\s+m|"
    r"inviato\s+da\b|verzonden\s+(?:met|vanaf|van\s+mijn)\b|sendt\s+fra\s+(?:min|outlook)|"
    r"skickat\s+från\s+min|wysłane\s+z\b|wysłano\s+z\s+(?:mojego|aplikacji)|"
    r"отправлено\s+(?:с|из)\b|odesláno\s+z\b|<<\s*sent\s+by)"
    r"|^(?:從我的|从我的).{1,30}(?:傳送|发送)\s*$"
    r"|^.{1,30}から送信\s*$"
    r"|^내\s.{1,30}에서\s*보냄\s*$",
    _I,
)
_DASH_DELIMITER = re.compile(r"^(?:--|__|-- ?)\s*$")
_DASH_NAME = re.compile(r"^-\w[\w .'’-]{0,40}$")
_QUOTE_PREFIX = re.compile(r"^\s*>")
_CLOSING_ANGLE = re.compile(r"^\s*>\s*[:：]\s*$")
_QUOTE_STRIP = re.compile(r"^(?:\s*>)+\s?")


def split_reply(text: str) -> ReplyParts:
    """Split `text` into the new part, its signature and the quoted history.

    Never raises; an empty or quote-only body gives an empty `new`. Line endings are
    normalised to "\\n"; the parts keep the input's lines otherwise.
    """
    lines = text.replace("\r\n", "\n").replace("\r", "\n").split("\n")
    markers = _markers(lines)
    if not markers:
        region = (0, len(lines))
    elif _has_content(lines[: markers[0][0]]):
        region = (0, markers[0][0])
    else:
        # Nothing typed above the first header: the message starts with one (bottom
        # posting, forwards, Outlook headers on top); what it heads is the new part.
        after = markers[0][1]
        following = [start for start, _ in markers[1:] if start >= after]
        region = (after, following[0] if following else len(lines))
    kept = [i for i in range(*region) if not _QUOTE_PREFIX.match(lines[i])]
    body = [lines[i] for i in kept]
    cut = _signature_start(body)
    new, signature = body[:cut], body[cut:]
    taken = set(kept)
    quoted = [line for i, line in enumerate(lines) if i not in taken]
    return ReplyParts(new=_trim(new), signature=_trim(signature), quoted=_trim(quoted))


def _markers(lines: list[str]) -> list[tuple[int, int]]:
    """Line ranges [start, end) that open quoted history, top to bottom."""
    found: list[tuple[int, int]] = []
    i = 0
    while i < len(lines):
        span = _marker_at(lines, i)
        if span is None:
            i += 1
            continue
        found.append((i, span))
        i = span
    return found


def _marker_at(lines: list[str], i: int) -> int | None:
    """The end of the quote marker starting at line `i`, or None if none starts there."""
    raw = lines[i]
    line = _QUOTE_STRIP.sub("", raw).strip()
    if not line:
        return None
    if _SEPARATOR.match(line):
        return i + 1
    if _RULE.match(line):
        nxt = _next_content(lines, i + 1, limit=3)
        if nxt is not None and _header_block_end(lines, nxt) is not None:
            return _header_block_end(lines, nxt)
        return None
    block_end = _header_block_end(lines, i)
    if block_end is not None:
        return block_end
    return _attribution_end(lines, i)


def _attribution_end(lines: list[str], i: int) -> int | None:
    """The end of an attribution ("On ... wrote:") starting at `i`, wrapped over <= 4 lines."""
    quoted = bool(_QUOTE_PREFIX.match(lines[i]))
    parts: list[str] = []
    for j in range(i, min(i + 4, len(lines))):
        if j > i and not quoted and _CLOSING_ANGLE.match(lines[j]):
            piece = lines[j].strip()  # "<noreply@example.com\n>:": an address wrapped
        else:
            piece = _QUOTE_STRIP.sub("", lines[j]).strip()
            if not piece or bool(_QUOTE_PREFIX.match(lines[j])) != quoted:
                return None
        parts.append(piece)
        if len(" ".join(parts)) > 400:
            return None
        if _is_attribution(lines, parts, i, j):
            # "Hello\nOn ... wrote:" must not swallow "Hello": a window starting on a
            # later line that reads as an attribution by itself is the real one.
            if any(_is_attribution(lines, parts[k - i :], k, j) for k in range(i + 1, j + 1)):
                return None
            return j + 1
    return None


def _is_attribution(lines: list[str], parts: list[str], i: int, j: int) -> bool:
    joined = " ".join(" ".join(parts).split())
    # Every pattern ends in one of these; checking first keeps long bodies linear.
    if not joined.endswith(_ENDINGS):
        return False
    if any(p.match(joined) for p in _STARTS_ANYWHERE):
        return True
    return bool(_NAME_FIRST.match(joined)) and _name_first_ok(lines, i, j, joined)


def _name_first_ok(lines: list[str], i: int, j: int, joined: str) -> bool:
    after_break = i == 0 or not lines[i - 1].strip() or bool(_QUOTE_PREFIX.match(lines[i]))
    if not after_break:
        return False
    if "@" in joined or re.search(r"\d", joined):
        return True
    nxt = _next_content(lines, j + 1, limit=3)
    return nxt is not None and bool(_QUOTE_PREFIX.match(lines[nxt]))


def _header_block_end(lines: list[str], i: int) -> int | None:
    """The end of an Outlook-style header block ("From: .. / Sent: .. / To: ..") at `i`."""
    first = _QUOTE_STRIP.sub("", lines[i]).strip()
    if not _HEADER_LINE.match(first):
        return None
    keys, end, j = 1, i + 1, i + 1
    while j < len(lines) and j < i + 8:
        piece = _QUOTE_STRIP.sub("", lines[j]).strip()
        if _HEADER_LINE.match(piece):
            keys, end = keys + 1, j + 1
        elif not piece and keys >= 2:
            break
        j += 1
    # "From:" and one more header, or three headers in any order (Hotmail puts
    # "Subject:" first); a lone "To: the team" inside a sentence is not a block.
    if (keys >= 2 and _FROM_LINE.match(first)) or keys >= 3:
        return end
    return None


def _signature_start(body: list[str]) -> int:
    """Index of the first signature line in `body` (len(body) when there is none)."""
    for i, line in enumerate(body):
        stripped = line.strip()
        if _DASH_DELIMITER.match(line) or _DEVICE.match(stripped):
            return i
    content = [i for i, line in enumerate(body) if line.strip()]
    if len(content) >= 2 and _DASH_NAME.match(body[content[-1]].strip()):
        return content[-1]
    return len(body)


def _next_content(lines: list[str], start: int, *, limit: int) -> int | None:
    for j in range(start, min(start + limit + 1, len(lines))):
        if lines[j].strip():
            return j
    return None


def _has_content(lines: list[str]) -> bool:
    return any(line.strip() and not _QUOTE_PREFIX.match(line) for line in lines)


def _trim(lines: list[str]) -> str:
    return "\n".join(line.rstrip() for line in lines).strip("\n").strip()
