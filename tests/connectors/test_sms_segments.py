"""Segment counting: GSM-7 160/153, UCS-2 70/67, two-unit characters never split."""

from __future__ import annotations

import pytest

from connectors.sms_segments import SegmentInfo, is_gsm7, segment_info


@pytest.mark.parametrize(
    ("length", "segments", "per_segment"),
    [(1, 1, 160), (160, 1, 160), (161, 2, 153), (306, 2, 153), (307, 3, 153), (459, 3, 153),
     (460, 4, 153)],
)
def test_gsm7_text_fills_160_then_153_septets_per_segment(
    length: int, segments: int, per_segment: int
) -> None:
    info = segment_info("a" * length)
    assert info.encoding == "GSM-7"
    assert (info.segments, info.per_segment, info.characters, info.units) == (
        segments, per_segment, length, length,
    )


def test_empty_text_is_zero_segments_because_an_empty_body_cannot_be_sent() -> None:
    assert segment_info("") == SegmentInfo("GSM-7", 0, 0, 160, 0, 160)


def test_gsm7_basic_table_accents_and_greek_stay_single_septet() -> None:
    text = "@£$¥èéùìòÇØøÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ¤¡ÄÖÑÜ§¿äöñüà\r\n"
    info = segment_info(text)
    assert info.encoding == "GSM-7"
    assert info.units == len(text)


@pytest.mark.parametrize("char", ["€", "[", "]", "{", "}", "\\", "^", "~", "|", "\f"])
def test_extension_characters_cost_two_septets(char: str) -> None:
    assert segment_info(char).units == 2
    assert segment_info(char * 80).segments == 1   # 160 septets
    assert segment_info(char * 81).segments == 2   # 162 septets


def test_extension_character_is_not_split_across_segments() -> None:
    # 152 septets, then "€" (2) would straddle the 153 boundary: it moves to segment 2.
    text = "a" * 152 + "€" + "a" * 152
    info = segment_info(text)
    assert info.units == 306  # would fit in 2 * 153 if the pair could be split
    assert info.segments == 3
    assert segment_info("a" * 151 + "€" + "a" * 151).segments == 2  # 151 + 2 = 153 exactly


def test_one_non_gsm_character_switches_the_whole_text_to_ucs2() -> None:
    assert is_gsm7("hello [world] €5")
    assert not is_gsm7("hello “world”")
    info = segment_info("a" * 100 + "ç")  # ç (lower-case) is not in GSM-7; Ç is
    assert (info.encoding, info.segments, info.per_segment) == ("UCS-2", 2, 67)


@pytest.mark.parametrize(
    ("length", "segments"), [(70, 1), (71, 2), (134, 2), (135, 3), (201, 3), (202, 4)]
)
def test_korean_text_fills_70_then_67_code_units_per_segment(length: int, segments: int) -> None:
    info = segment_info("한" * length)
    assert info.encoding == "UCS-2"
    assert (info.segments, info.units, info.characters) == (segments, length, length)


def test_emoji_cost_two_utf16_units() -> None:
    assert segment_info("😀" * 35) == SegmentInfo("UCS-2", 1, 35, 70, 70, 0)
    info = segment_info("😀" * 35 + "a")  # 71 units
    assert (info.segments, info.units, info.characters) == (2, 71, 36)


def test_emoji_is_not_split_across_segments_at_the_67_unit_boundary() -> None:
    # 66 units + an emoji would straddle unit 67: it moves on, and 134 units need 3 segments.
    text = "한" * 66 + "😀" + "한" * 66
    info = segment_info(text)
    assert info.units == 134
    assert info.segments == 3
    assert segment_info("한" * 65 + "😀" + "한" * 67).segments == 2  # 67 + 67, no straddle


def test_remaining_counts_what_still_fits_in_the_last_segment() -> None:
    assert segment_info("a" * 150).remaining == 10
    assert segment_info("a" * 200).remaining == 153 * 2 - 200
