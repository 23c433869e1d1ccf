"""Reading header fields the way real mail writes them, not the way RFCs hope.

Promises: header values come back as `str` with encoded-words decoded and raw 8-bit
bytes (illegal, yet common: old clients, docomo phones) decoded as UTF-8 when they are
valid UTF-8, else in the message's declared charset, else windows-1252. Nothing here
raises for a malformed header; it returns what could be read.
"""

from __future__ import annotations

import codecs
import email.policy
import email.utils
import re
from collections.abc import Iterable
from email.message import EmailMessage, Message

__all__ = [
    "addresses",
    "charset_codec",
    "decode_8bit",
    "header",
    "header_all",
    "message_ids",
    "normalise_message_id",
]

# Charset labels mail clients write and the codec that really decodes them. WHATSWG's
# encoding standard (https://encoding.spec.whatwg.org/#names-and-labels) maps these
# labels to the superset encodings browsers use; mail clients behave the same.
_CHARSET_ALIASES = {
    "ks_c_5601-1987": "cp949",  # Outlook's name for Korean; really CP949 (UHC)
    "ks_c_5601": "cp949",
    "euc-kr": "cp949",
    "korean": "cp949",
    "gb2312": "gb18030",
    "gbk": "gb18030",
    "x-gbk": "gb18030",
    "shift_jis": "cp932",
    "shift-jis": "cp932",
    "x-sjis": "cp932",
    "sjis": "cp932",
    "windows-31j": "cp932",
    "iso-2022-jp": "iso2022_jp_ext",
    "iso-8859-1": "cp1252",
    "latin1": "cp1252",
    "latin-1": "cp1252",
    "us-ascii": "cp1252",
    "ascii": "cp1252",
    "iso-8859-9": "cp1254",
    "iso-8859-11": "cp874",
    "tis-620": "cp874",
    "big5": "big5hkscs",
    "utf8": "utf-8",
    "unicode-1-1-utf-8": "utf-8",
}
_FALLBACK = "cp1252"
_SURROGATES = re.compile("[\udc80-\udcff]+")
_MSGID = re.compile(r"<\s*([^<>\s]+?)\s*>")


def charset_codec(label: str | None) -> str | None:
    """The Python codec that decodes text labelled `label`, or None if unknown."""
    if not label:
        return None
    name = label.strip().strip('"').lower()
    name = _CHARSET_ALIASES.get(name, name)
    try:
        return codecs.lookup(name).name
    except LookupError:
        return None


def decode_8bit(value: str, *, charset: str | None = None) -> str:
    """Replace surrogate-escaped raw bytes in `value` with the characters they encode."""
    if not _SURROGATES.search(value):
        return value

    def repair(match: re.Match[str]) -> str:
        data = match.group().encode("utf-8", "surrogateescape")
        for codec in ("utf-8", charset_codec(charset), _FALLBACK):
            if codec is None:
                continue
            try:
                return data.decode(codec)
            except UnicodeDecodeError:
                continue
        return data.decode(_FALLBACK, "replace")

    # Runs of raw bytes may be split by ASCII inside one UTF-8 sequence only in broken
    # input; decoding each run on its own is what every client does.
    return _SURROGATES.sub(repair, value)


def _raw_values(msg: Message, name: str) -> list[str]:
    wanted = name.lower()
    return [str(v) for k, v in msg.raw_items() if k.lower() == wanted]


def _decode_value(name: str, raw: str, charset: str | None) -> str:
    # Every field is decoded as unstructured text: encoded-words become characters and
    # the rest stays as written ("alice@example.com <bob@example.com>" is not
    # re-serialised into something else). Addresses are read by `addresses()`.
    return " ".join(_decode_words(decode_8bit(_unfold(raw), charset=charset)).split())


def header(msg: Message, name: str, *, charset: str | None = None) -> str | None:
    """The first `name` field, decoded and unfolded, or None when absent."""
    values = _raw_values(msg, name)
    if not values:
        return None
    return _decode_value(name, values[0], charset)


def header_all(msg: Message, name: str, *, charset: str | None = None) -> list[str]:
    """Every `name` field, decoded, in message order."""
    return [_decode_value(name, raw, charset) for raw in _raw_values(msg, name)]


def addresses(
    msg: Message, names: Iterable[str], *, charset: str | None = None
) -> list[tuple[str, str]]:
    """(display name, address) pairs from the `names` fields; addresses keep their case."""
    found: list[tuple[str, str]] = []
    for name in names:
        for raw in _raw_values(msg, name):
            found.extend(_parse_addresses(name, decode_8bit(raw, charset=charset)))
    return found


def _parse_addresses(name: str, value: str) -> list[tuple[str, str]]:
    """Address pairs from one field, leniently.

    Our own splitter, not `email.headerregistry`: the stdlib reads the common
    `alice@example.com <bob@example.com>` as the address alice@example.com, and the
    compat32 `getaddresses` splits it into two addresses. Real mail wants the name/address
    reading (SpamScope/mail-parser's test_from_email_as_display_name).
    """
    pairs: list[tuple[str, str]] = []
    for item in _split_list(_unfold(value)):
        item = item.strip().rstrip(";").strip()
        if ":" in item and not item.startswith('"') and "<" not in item.split(":", 1)[0]:
            item = item.split(":", 1)[1].strip()  # "group: a@b" -> "a@b"
        if not item:
            continue
        angle = _ANGLE.match(item)
        if angle:
            display, addr = angle.group("name"), angle.group("addr")
        else:
            comment = _COMMENT.match(item)
            display, addr = (comment.group("name"), comment.group("addr")) if comment else ("", item)
        addr = addr.strip().strip("<>").strip()
        if not addr or addr == "<>" or " " in addr:
            continue
        display = _display(display)
        if display.casefold() == addr.casefold():
            display = ""  # a name that only repeats the address says nothing
        pairs.append((display, addr))
    return pairs


_ANGLE = re.compile(r"^(?P<name>.*?)\s*<(?P<addr>[^<>]*)>\s*(?:\(.*\))?$", re.DOTALL)
_COMMENT = re.compile(r"^(?P<addr>[^\s()<>]+)\s*\((?P<name>.*)\)$", re.DOTALL)


def _split_list(value: str) -> list[str]:
    """Split on commas outside quotes, angle brackets and comments."""
    items: list[str] = []
    current: list[str] = []
    quoted = escaped = False
    angle = paren = 0
    for char in value:
        if escaped:
            escaped = False
        elif char == "\\" and quoted:
            escaped = True
        elif char == '"':
            quoted = not quoted
        elif not quoted:
            if char == "<":
                angle += 1
            elif char == ">":
                angle = max(0, angle - 1)
            elif char == "(":
                paren += 1
            elif char == ")":
                paren = max(0, paren - 1)
            elif char == "," and not angle and not paren:
                items.append("".join(current))
                current = []
                continue
        current.append(char)
    items.append("".join(current))
    return items


def _display(value: str) -> str:
    value = value.strip()
    if len(value) >= 2 and value[0] == value[-1] == '"':
        value = re.sub(r'\\(.)', r"\1", value[1:-1])
    return _decode_words(value).strip()


def _unfold(value: str) -> str:
    return re.sub(r"\r?\n(?=[ \t])", "", value).replace("\r", "").replace("\n", " ")


def _decode_words(value: str) -> str:
    if "=?" not in value:
        return value
    try:
        return decode_8bit(str(email.policy.default.header_factory("subject", value)))
    except Exception:  # the stdlib parser has known crashes on hostile input
        return value


def normalise_message_id(value: str | None) -> str | None:
    """`<id@host>` for the first message id in `value`, or None when there is none."""
    ids = message_ids(value)
    return ids[0] if ids else None


def message_ids(value: str | None) -> list[str]:
    """Every message id in a Message-ID / In-Reply-To / References value, as `<...>`.

    Ids without angle brackets (some broken mailers) are taken when they contain "@".
    """
    if not value:
        return []
    found = [f"<{m}>" for m in _MSGID.findall(value)]
    if found:
        return found
    return [f"<{tok.strip('<>')}>" for tok in value.split() if "@" in tok.strip("<>,;")]


def message_charset(msg: EmailMessage | Message) -> str | None:
    """The first charset the message declares anywhere, a hint for raw 8-bit headers."""
    for part in msg.walk():
        charset = part.get_content_charset()
        if charset and charset_codec(charset) not in (None, "cp1252", "ascii"):
            return charset
    return None
