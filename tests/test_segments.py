"""server.sms.segments: SMS segment counting and splitting per 3GPP TS 23.038."""

from __future__ import annotations

import pytest
from hypothesis import given, strategies as st

from server.sms.segments import (
    GSM7_BASIC,
    GSM7_EXTENSION,
    SegmentCount,
    count_segments,
    is_gsm7,
    split_parts,
)

# The 3GPP TS 23.038 default alphabet by position, 16 a row; None is 0x1B (escape).
TABLE = [
    "@£$¥èéùìòÇ\nØø\rÅå",
    "Δ_ΦΓΛΩΠΨΣΘΞ\x00ÆæßÉ",
    " !\"#¤%&'()*+,-./",
    "0123456789:;<=>?",
    "¡ABCDEFGHIJKLMNO",
    "PQRSTUVWXYZÄÖÑÜ§",
    "¿abcdefghijklmno",
    "pqrstuvwxyzäöñüà",
]
EXTENSION = {0x0A: "\f", 0x14: "^", 0x28: "{", 0x29: "}", 0x2F: "\\", 0x3C: "[", 0x3D: "~",
             0x3E: "]", 0x40: "|", 0x65: "€"}


def test_tables_match_3gpp():
    basic = "".join(TABLE)
    assert len(basic) == 128 and basic[0x1B] == "\x00"
    assert GSM7_BASIC == frozenset(basic[:0x1B] + basic[0x1C:])
    assert len(GSM7_BASIC) == 127
    assert basic[0x09] == "Ç"
    assert GSM7_EXTENSION == frozenset(EXTENSION.values())
    assert not GSM7_BASIC & GSM7_EXTENSION


def test_every_basic_char_costs_one_septet_and_every_extension_char_two():
    for char in GSM7_BASIC:
        assert count_segments(char) == SegmentCount("GSM-7", 1, 1, 160, 159), repr(char)
    for char in GSM7_EXTENSION:
        assert count_segments(char) == SegmentCount("GSM-7", 2, 1, 160, 158), repr(char)


def test_empty_text_is_zero_segments():
    assert count_segments("") == SegmentCount("GSM-7", 0, 0, 160, 160)
    assert split_parts("") == []


@pytest.mark.parametrize(
    "text,expected",
    [
        ("a" * 160, SegmentCount("GSM-7", 160, 1, 160, 0)),
        ("a" * 161, SegmentCount("GSM-7", 161, 2, 153, 153 - 8)),
        ("a" * 306, SegmentCount("GSM-7", 306, 2, 153, 0)),
        ("a" * 307, SegmentCount("GSM-7", 307, 3, 153, 152)),
        ("hello", SegmentCount("GSM-7", 5, 1, 160, 155)),
        # extension characters at the boundaries
        ("€" * 80, SegmentCount("GSM-7", 160, 1, 160, 0)),
        ("a" * 158 + "€", SegmentCount("GSM-7", 160, 1, 160, 0)),
        ("a" * 159 + "€", SegmentCount("GSM-7", 161, 2, 153, 153 - 8)),
        ("a" * 152 + "€", SegmentCount("GSM-7", 154, 1, 160, 6)),
        ("a" * 152 + "€" + "a" * 152, SegmentCount("GSM-7", 306, 3, 153, 152)),  # 152 | €+151 | a
        ("a" * 153 + "€" + "a" * 151, SegmentCount("GSM-7", 306, 2, 153, 0)),  # pair starts part 2
        ("[" * 81, SegmentCount("GSM-7", 162, 2, 153, 153 - 10)),  # 76 pairs (152) | 5 pairs
        ("\f" * 80 + "a", SegmentCount("GSM-7", 161, 2, 153, 144)),  # 76 pairs | 4 pairs + a
        # UCS-2
        ("й" * 70, SegmentCount("UCS-2", 70, 1, 70, 0)),
        ("й" * 71, SegmentCount("UCS-2", 71, 2, 67, 63)),
        ("й" * 134, SegmentCount("UCS-2", 134, 2, 67, 0)),
        ("й" * 135, SegmentCount("UCS-2", 135, 3, 67, 66)),
        ("😀" * 35, SegmentCount("UCS-2", 70, 1, 70, 0)),
        ("😀" * 36, SegmentCount("UCS-2", 72, 2, 67, 61)),  # 33 emoji (66 units) | 3
        # emoji at the 67 boundary
        ("a" * 65 + "😀" + "a" * 10, SegmentCount("UCS-2", 77, 2, 67, 57)),  # ends part 1 exactly
        ("a" * 66 + "😀" + "a" * 66, SegmentCount("UCS-2", 134, 3, 67, 66)),  # moves to part 2
        # one non-GSM character switches the whole message
        ("a" * 100 + "й", SegmentCount("UCS-2", 101, 2, 67, 33)),
        ("a" * 69 + "€й", SegmentCount("UCS-2", 71, 2, 67, 63)),  # € is one unit in UCS-2
        ("tab\there", SegmentCount("UCS-2", 8, 1, 70, 62)),
        ("line\r\nbreak", SegmentCount("GSM-7", 11, 1, 160, 149)),
    ],
)
def test_counts(text, expected):
    assert count_segments(text) == expected


def test_capital_c_cedilla_is_gsm7_lowercase_is_not():
    """0x09: 3GPP's table has Ç; Unicode's mapping file says ç. We follow 3GPP."""
    assert is_gsm7("Ç") and not is_gsm7("ç")
    assert count_segments("Ç" * 160) == SegmentCount("GSM-7", 160, 1, 160, 0)
    assert count_segments("ç") == SegmentCount("UCS-2", 1, 1, 70, 69)
    assert count_segments("Ça va? " * 10 + "ç").encoding == "UCS-2"


def test_lookalikes_are_not_gsm7():
    # Greek capitals in the table are the Greek ones; Latin/Cyrillic lookalikes of others
    # and accented letters missing from the table switch to UCS-2.
    assert is_gsm7("ΔΦΓΛΩΠΨΣΘΞ")
    for char in "δ`ÀÁÂãêëïíîóôõúûÿ\u00a0’“”–—…":
        assert not is_gsm7(char), repr(char)


def test_split_three_part_example_never_cuts_an_escape_pair():
    text = "a" * 152 + "€" + "a" * 152
    parts = split_parts(text)
    assert parts == ["a" * 152, "€" + "a" * 151, "a"]
    assert "".join(parts) == text


def test_split_never_cuts_a_surrogate_pair():
    parts = split_parts("a" * 66 + "😀" + "b" * 70)
    assert parts == ["a" * 66, "😀" + "b" * 65, "b" * 5]
    assert split_parts("a" * 65 + "😀" + "b" * 10) == ["a" * 65 + "😀", "b" * 10]


def test_split_single_message_is_the_text_itself():
    assert split_parts("short") == ["short"]
    assert split_parts("a" * 160) == ["a" * 160]
    assert split_parts("й" * 70) == ["й" * 70]
    assert split_parts("a" * 161) == ["a" * 153, "a" * 8]
    assert split_parts("й" * 71) == ["й" * 67, "й" * 4]


def _units(text: str, encoding: str) -> int:
    if encoding == "GSM-7":
        return sum(2 if ch in GSM7_EXTENSION else 1 for ch in text)
    return len(text.encode("utf-16-le")) // 2


_gsm_alphabet = sorted(GSM7_BASIC | GSM7_EXTENSION)
messages = st.one_of(
    st.text(st.sampled_from(_gsm_alphabet), max_size=700),
    st.text(st.sampled_from(_gsm_alphabet + ["€", "€", "😀", "й", "ç"]), max_size=400),
    st.text(st.characters(blacklist_categories=("Cs",)), max_size=300),
)


@given(messages)
def test_count_and_split_agree(text):
    count = count_segments(text)
    parts = split_parts(text)
    assert "".join(parts) == text
    assert len(parts) == count.segments
    assert count.encoding == ("GSM-7" if all(ch in GSM7_BASIC or ch in GSM7_EXTENSION for ch in text) else "UCS-2")
    assert count.units == _units(text, count.encoding)
    single = 160 if count.encoding == "GSM-7" else 70
    assert count.per_segment == (single if count.segments <= 1 else single - (7 if single == 160 else 3))
    for part in parts:
        assert 0 < _units(part, count.encoding) <= count.per_segment
    if parts:
        assert count.remaining == count.per_segment - _units(parts[-1], count.encoding)
        # greedy: the next character of the text would not have fitted in each full part
        for part, following in zip(parts, parts[1:]):
            assert _units(part + following[0], count.encoding) > count.per_segment
    else:
        assert count == SegmentCount("GSM-7", 0, 0, 160, 160)


@given(st.text(st.sampled_from(_gsm_alphabet), min_size=1, max_size=159))
def test_remaining_is_exactly_what_still_fits(text):
    count = count_segments(text)
    assert count_segments(text + "a" * count.remaining).segments == 1
    assert count_segments(text + "a" * (count.remaining + 1)).segments == 2


def test_summary_is_one_short_line():
    assert count_segments("").summary() == "GSM-7 · 0 septets · 0 parts · 160 left"
    assert count_segments("a" * 161).summary() == "GSM-7 · 161 septets · 2 parts · 145 left"
    # 65 emoji are 130 UTF-16 units; a part never splits a surrogate pair: 66 + 64 of 67
    assert count_segments("😀" * 65).summary() == "UCS-2 · 130 UTF-16 units · 2 parts · 3 left"
