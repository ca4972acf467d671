"""Untrusted-text neutralising and SMS segment counting."""

from __future__ import annotations

import re

import pytest
from hypothesis import given, strategies as st

from server.sms.sanitize import neutralise, neutralise_line, truncate
from server.sms.segments import count_segments, split_parts

DANGEROUS = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u061c\u200b\u200e\u200f\u2028\u2029\u202a-\u202e\u2060-\u2064\u2066-\u2069\ufeff]")


@pytest.mark.parametrize(
    "raw,shown",
    [
        ("\x1b]52;c;aGk=\x07", "\\x1b]52;c;aGk=\\x07"),       # OSC 52 clipboard write
        ("\x1b]0;pwned\x1b\\", "\\x1b]0;pwned\\x1b\\"),         # window title, ST-terminated
        ("\x1b]0;unterminated", "\\x1b]0;unterminated"),
        ("\x1b[2J\x1b[31mred", "\\x1b[2J\\x1b[31mred"),         # CSI
        ("\x9b31m", "\\x9b31m"),                              # 8-bit CSI
        ("\x9d0;t\x9c", "\\x9d0;t\\x9c"),                      # 8-bit OSC and ST
        ("\x1bPq#0\x1b\\", "\\x1bPq#0\\x1b\\"),                 # DCS
        ("\x1b_apc\x07", "\\x1b_apc\\x07"),
        ("a\u202eb", "a\\u202eb"),                            # bidi override
        ("a\u2066b\u2069", "a\\u2066b\\u2069"),
        ("nul\x00del\x7fcr\r", "nul\\x00del\\x7fcr\\x0d"),
        ("zero\u200bwidth", "zero\\u200bwidth"),
    ],
)
def test_sequences_are_shown_not_obeyed(raw, shown):
    assert neutralise(raw) == shown
    assert DANGEROUS.search(neutralise(raw)) is None


def test_emoji_joiners_pass():
    assert neutralise("👩\u200d💻 and \u200c") == "👩\u200d💻 and \u200c"


def test_plain_text_emoji_tabs_and_newlines_pass():
    text = "Hello 😀 café\tcol\nnext [bold]markup[/] stays text"
    assert neutralise(text) == text
    assert neutralise_line(text) == "Hello 😀 café⇥col⏎next [bold]markup[/] stays text"


@given(st.text())
def test_output_never_holds_a_dangerous_character(text):
    once = neutralise(text)
    assert DANGEROUS.search(once) is None
    assert DANGEROUS.search(neutralise(once)) is None
    assert "\n" not in neutralise_line(text)


def test_truncate():
    assert truncate("abcdef", 4) == "abc…"
    assert truncate("abc", 4) == "abc"
    assert truncate("abc", 0) == ""


@pytest.mark.parametrize(
    "text,encoding,units,segments",
    [
        ("", "GSM-7", 0, 0),
        ("a" * 160, "GSM-7", 160, 1),
        ("a" * 161, "GSM-7", 161, 2),
        ("a" * 306, "GSM-7", 306, 2),
        ("a" * 307, "GSM-7", 307, 3),
        ("€" * 80, "GSM-7", 160, 1),
        ("a" * 159 + "€", "GSM-7", 161, 2),
        ("a" * 152 + "€" + "a" * 152, "GSM-7", 306, 3),
        ("й" * 70, "UCS-2", 70, 1),
        ("й" * 71, "UCS-2", 71, 2),
        ("😀" * 35, "UCS-2", 70, 1),
        ("a" * 66 + "😀" + "a" * 66, "UCS-2", 134, 3),
        ("Ç", "GSM-7", 1, 1),
        ("ç", "UCS-2", 1, 1),
    ],
)
def test_segment_counts(text, encoding, units, segments):
    count = count_segments(text)
    assert (count.encoding, count.units, count.segments) == (encoding, units, segments)


def test_remaining_and_per_segment():
    assert count_segments("hello").remaining == 155
    multi = count_segments("a" * 200)
    assert multi.per_segment == 153 and multi.remaining == 153 - 47


def test_split_never_cuts_a_pair():
    parts = split_parts("a" * 152 + "€" + "a" * 152)
    assert [len(p) for p in parts] == [152, 152, 1]  # "€" + 151 "a" = 153 septets
    assert "".join(parts) == "a" * 152 + "€" + "a" * 152
    emoji = split_parts("a" * 66 + "😀" + "b" * 70)
    assert emoji[0] == "a" * 66 and emoji[1].startswith("😀")
    assert split_parts("short") == ["short"]
    assert split_parts("") == []
