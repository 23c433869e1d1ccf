"""How many SMS segments a text costs, so the composer can show it before an agent sends.

Pure functions, no I/O. The rules (3GPP TS 23.038 alphabet, TS 23.040 concatenation):

* A text is sent as **GSM-7** when every character is in the GSM 03.38 basic table or its
  extension table; extension characters (``€ [ ] { } \\ ^ ~ |`` and form feed) cost two
  septets (an escape plus the character). One segment holds 160 septets; a concatenated
  message holds 153 per segment (7 septets go to the user data header).
* Anything else goes as **UCS-2**: 70 UTF-16 code units in one segment, 67 per segment when
  concatenated. Characters outside the BMP (most emoji) are surrogate pairs and cost 2.
* A unit that costs 2 (an escape pair, a surrogate pair) is never split across two
  segments, as handsets and Twilio's segment calculator do; so a long text may need one
  segment more than ``ceil(units / 153)`` would say.

Twilio's optional "smart encoding" (replacing curly quotes and the like with GSM look-alikes)
is a Messaging Service setting and is not modelled: we count the text as written.

An empty text is **0 segments**: it has no text to bill and Twilio refuses an empty body
(error 21602) unless media goes with it, which is billed as MMS, not by segments.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

# GSM 03.38 default alphabet (3GPP TS 23.038 §6.2.1), without the escape (0x1B) itself.
GSM7_BASIC = frozenset(
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
# The extension table (§6.2.1.1): each costs ESC + character = 2 septets.
GSM7_EXTENSION = frozenset("\f^{}\\[~]|€")

GSM7_SINGLE = 160  # septets in a single segment (140 octets * 8 / 7)
GSM7_MULTI = 153   # septets per segment once a 6-octet concatenation header is added
UCS2_SINGLE = 70   # UTF-16 code units in a single segment (140 octets / 2)
UCS2_MULTI = 67    # code units per segment with the concatenation header

Encoding = Literal["GSM-7", "UCS-2"]


@dataclass(frozen=True, slots=True)
class SegmentInfo:
    """The cost of one text as SMS.

    `characters` is what a person counts (code points); `units` is what the network counts
    (septets for GSM-7, UTF-16 code units for UCS-2); `per_segment` is the capacity of each
    segment at this length (160/70 for a single segment, 153/67 once concatenated);
    `remaining` is how many units still fit in the last segment.
    """

    encoding: Encoding
    segments: int
    characters: int
    per_segment: int
    units: int = 0
    remaining: int = 0


def is_gsm7(text: str) -> bool:
    """True when every character of `text` can be sent in the GSM-7 alphabet."""
    return all(ch in GSM7_BASIC or ch in GSM7_EXTENSION for ch in text)


def _gsm7_cost(ch: str) -> int:
    return 2 if ch in GSM7_EXTENSION else 1


def _ucs2_cost(ch: str) -> int:
    return 2 if ord(ch) > 0xFFFF else 1


def segment_info(text: str) -> SegmentInfo:
    """Return the encoding and segment count Twilio will use for `text`.

    Promises: `segments == 0` only for the empty text; `units <= per_segment * segments`;
    a two-unit character is never split across segments.
    """
    if is_gsm7(text):
        encoding: Encoding = "GSM-7"
        cost, single, multi = _gsm7_cost, GSM7_SINGLE, GSM7_MULTI
    else:
        encoding = "UCS-2"
        cost, single, multi = _ucs2_cost, UCS2_SINGLE, UCS2_MULTI

    costs = [cost(ch) for ch in text]
    units = sum(costs)
    if units == 0:
        return SegmentInfo(encoding, 0, 0, single, 0, single)
    if units <= single:
        return SegmentInfo(encoding, 1, len(text), single, units, single - units)

    segments, used = 1, 0
    for unit in costs:
        if used + unit > multi:  # a pair that does not fit starts the next segment
            segments, used = segments + 1, 0
        used += unit
    return SegmentInfo(encoding, segments, len(text), multi, units, multi - used)
