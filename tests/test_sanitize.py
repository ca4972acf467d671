"""server.sms.sanitize: untrusted text can never control the terminal, and stays readable."""

from __future__ import annotations

import re
import subprocess
import sys
import unicodedata

import pytest
from hypothesis import given, settings, strategies as st

from server.sms.sanitize import neutralise, neutralise_line, truncate

# The dangerous set, written out from the spec (not imported from the module under test).
C0 = [chr(c) for c in range(0x20) if c not in (0x09, 0x0A)]
C1 = [chr(c) for c in range(0x80, 0xA0)]
BIDI = ["\u200e", "\u200f", "\u061c", *map(chr, range(0x202A, 0x202F)), *map(chr, range(0x2066, 0x206A))]
INVISIBLE = ["\u200b", "\ufeff", *map(chr, range(0x2060, 0x2065)), "\u2028", "\u2029"]
SURROGATES = [chr(c) for c in range(0xD800, 0xE000)]
EXPECTED = frozenset([*C0, "\x7f", *C1, *BIDI, *INVISIBLE, *SURROGATES])
DANGEROUS = re.compile("[" + "".join(sorted(EXPECTED)) + "]")


def shown(char: str) -> str:
    code = ord(char)
    return f"\\x{code:02x}" if code <= 0xFF else f"\\u{code:04x}"


def unescape(text: str) -> str:
    """Reverse the placeholder scheme (valid for inputs holding no backslash)."""
    return re.sub(r"\\x([0-9a-f]{2})|\\u([0-9a-f]{4})", lambda m: chr(int(m[1] or m[2], 16)), text)


def assert_inert(text: str) -> None:
    assert DANGEROUS.search(text) is None, ascii(text)
    text.encode("utf-8")  # no lone surrogate: a strict UTF-8 stdout can print it


@pytest.mark.parametrize(
    "raw,expected",
    [
        # CSI, 7-bit and 8-bit, complete and cut off
        ("\x1b[2J\x1b[31mred\x1b[0m", "\\x1b[2J\\x1b[31mred\\x1b[0m"),
        ("\x1b[?1049h", "\\x1b[?1049h"),
        ("\x9b31m", "\\x9b31m"),
        ("end\x1b[", "end\\x1b["),
        ("end\x1b[12;", "end\\x1b[12;"),
        ("\x9b", "\\x9b"),
        # OSC: BEL, ESC \ and 8-bit ST terminators, 8-bit introducer, unterminated
        ("\x1b]52;c;aGk=\x07", "\\x1b]52;c;aGk=\\x07"),
        ("\x1b]0;pwned\x1b\\after", "\\x1b]0;pwned\\x1b\\after"),
        ("\x1b]8;;http://evil/\x1b\\link\x1b]8;;\x1b\\", "\\x1b]8;;http://evil/\\x1b\\link\\x1b]8;;\\x1b\\"),
        ("\x9d0;t\x9c", "\\x9d0;t\\x9c"),
        ("\x1b]0;unterminated", "\\x1b]0;unterminated"),
        ("\x9d52;c;aGk=", "\\x9d52;c;aGk="),
        # DCS, SOS, PM, APC: 7-bit and 8-bit, terminated and not
        ("\x1bPq#0\x1b\\", "\\x1bPq#0\\x1b\\"),
        ("\x90q#0\x9c", "\\x90q#0\\x9c"),
        ("\x1bP$qm", "\\x1bP$qm"),
        ("\x1bXsos\x1b\\", "\\x1bXsos\\x1b\\"),
        ("\x98sos", "\\x98sos"),
        ("\x1b^pm\x1b\\", "\\x1b^pm\\x1b\\"),
        ("\x9epm\x9c", "\\x9epm\\x9c"),
        ("\x1b_apc\x07", "\\x1b_apc\\x07"),
        ("\x9fapc", "\\x9fapc"),
        # other C1 codes, lone ESC, other escapes
        ("a\x85b\x84c\x80d\x9ce", "a\\x85b\\x84c\\x80d\\x9ce"),
        ("\x1b", "\\x1b"),
        ("x\x1b", "x\\x1b"),
        ("\x1bc", "\\x1bc"),  # RIS: full reset
        ("\x1b(0", "\\x1b(0"),  # line-drawing charset
        ("\x1b\x1b[m", "\\x1b\\x1b[m"),
        # C0, CR, DEL
        ("nul\x00del\x7fcr\r", "nul\\x00del\\x7fcr\\x0d"),
        ("bell\x07bs\x08vt\x0bff\x0c", "bell\\x07bs\\x08vt\\x0bff\\x0c"),
        ("so\x0esi\x0f", "so\\x0esi\\x0f"),
        # bidi, separators, invisible
        ("a\u202eb", "a\\u202eb"),
        ("a\u2066b\u2069", "a\\u2066b\\u2069"),
        ("\u200e\u200f\u061c", "\\u200e\\u200f\\u061c"),
        ("line\u2028para\u2029", "line\\u2028para\\u2029"),
        ("zero\u200bwidth\ufeff\u2060\u2064", "zero\\u200bwidth\\ufeff\\u2060\\u2064"),
        # lone surrogate (not Unicode text)
        ("a\ud800b\udfff", "a\\ud800b\\udfff"),
        # dangerous characters inside a sequence's parameters are shown too
        ("\x1b]0;\u202e\x00x\x07", "\\x1b]0;\\u202e\\x00x\\x07"),
    ],
)
def test_sequences_are_shown_not_obeyed(raw, expected):
    out = neutralise(raw)
    assert out == expected
    assert_inert(out)
    if "\\" not in raw:
        assert unescape(out) == raw  # shows what was there


def test_the_changed_characters_are_exactly_the_dangerous_set():
    """Every code point, one at a time: the dangerous ones become their escape, all others
    (tab, newline, printable, emoji, private use...) come back unchanged."""
    changed = set()
    for code in range(0x110000):
        char = chr(code)
        out = neutralise(char)
        if out != char:
            changed.add(char)
            assert out == shown(char)
    assert changed == EXPECTED


def test_every_control_and_explicit_bidi_character_is_covered():
    """Cross-check against the Unicode database rather than the spec's list."""
    explicit = {"LRE", "RLE", "LRO", "RLO", "PDF", "LRI", "RLI", "FSI", "PDI"}
    for code in range(0x110000):
        char = chr(code)
        category = unicodedata.category(char)
        if (
            (category == "Cc" and char not in "\t\n")
            or category in ("Zl", "Zp", "Cs")
            or unicodedata.bidirectional(char) in explicit
        ):
            assert neutralise(char) == shown(char), hex(code)


@pytest.mark.parametrize(
    "text",
    [
        "",
        "Hello, world! Reply STOP to opt out.",
        "Tab\tand\nnewline stay in multi-line text",
        "emoji 😀👍🏽🇫🇷 math 𝐀𝔅 ancient 𓀀",  # beyond the BMP: surrogate pairs in UTF-16
        "CJK 日本語 한국어 Cyrillic Привет Greek ΩΔ Arabic مرحبا Hebrew שלום",
        "combining e\u0301 n\u0303 variation ❤\ufe0f keycap 1\ufe0f\u20e3",
        "markup [bold]x[/] [@click=app.quit] \\x1b literal backslash",
        "\u00a0nbsp \u00adsoft-hyphen \u00ff ÿ \u0100 Ā \ue000 private",
    ],
)
def test_clean_text_passes_unchanged_and_is_the_same_object(text):
    assert neutralise(text) is text
    if "\n" not in text and "\t" not in text:
        assert neutralise_line(text) is text


def test_neutralise_line_shows_line_breaks():
    assert neutralise_line("a\nb\tc") == "a⏎b⇥c"
    assert neutralise_line("crlf\r\n") == "crlf\\x0d⏎"
    assert neutralise_line("\x1b]0;x\x07\n") == "\\x1b]0;x\\x07⏎"
    assert neutralise_line("sep\u2028") == "sep\\u2028"


def test_output_is_lossless_for_backslash_free_text():
    raw = "pay\x1b[8m hidden\x1b[0m \u202eevil\u202c\r\x00\ud83d"
    assert unescape(neutralise(raw)) == raw


# Text built mostly from dangerous characters and sequence pieces.
_pieces = st.sampled_from(
    [*sorted(EXPECTED)[:200], "\x1b[", "\x1b]", "\x1bP", "\x1b\\", "\x07", "\x9c", "[", "]",
     ";", "\\", "x1b", "a", "😀", "\t", "\n", "é", "\u0301"]
)
hostile_text = st.one_of(st.text(), st.lists(_pieces, max_size=40).map("".join))


@settings(max_examples=500)
@given(hostile_text)
def test_output_never_holds_a_dangerous_character(text):
    once = neutralise(text)
    assert_inert(once)
    assert neutralise(once) == once  # idempotent
    line = neutralise_line(text)
    assert_inert(line)
    assert "\n" not in line and "\t" not in line
    assert neutralise_line(line) == line


@given(hostile_text)
def test_nothing_is_dropped(text):
    out = neutralise(text)
    if "\\" not in text:
        assert unescape(out) == text
    assert len(out) >= len(text)


# truncate

def test_truncate_ascii():
    assert truncate("abcdef", 4) == "abc…"
    assert truncate("abcd", 4) == "abcd"
    assert truncate("abc", 4) == "abc"
    assert truncate("ab", 1) == "…"
    assert truncate("a", 1) == "a"
    assert truncate("abc", 0) == ""
    assert truncate("abc", -3) == ""
    assert truncate("", 5) == ""


def test_truncate_counts_terminal_cells():
    assert truncate("日本語テキスト", 6) == "日本…"  # 4 cells + ellipsis: a third wide char won't fit
    assert truncate("日本語", 6) == "日本語"
    assert truncate("ab日c", 4) == "ab…"  # never half a wide character
    assert truncate("😀😀😀😀", 5) == "😀😀…"
    assert truncate("e\u0301" * 10, 5) == "e\u0301" * 4 + "…"  # combining marks take no cell
    assert truncate("e\u0301" * 5, 5) == "e\u0301" * 5
    assert truncate("Привет, мир", 7) == "Привет…"


def _cells(text: str) -> int:
    total = 0
    for char in text:
        if unicodedata.combining(char) or unicodedata.category(char) in ("Mn", "Me", "Cf"):
            continue
        total += 2 if unicodedata.east_asian_width(char) in ("W", "F") else 1
    return total


@given(st.text(st.characters(blacklist_categories=("Cc", "Cs"))), st.integers(0, 50))
def test_truncate_fits_and_keeps_a_prefix(text, width):
    out = truncate(text, width)
    assert _cells(out) <= max(width, 0)
    if out == text:
        assert _cells(text) <= width
    else:
        assert (out == "" and width == 0) or (out.endswith("…") and text.startswith(out[:-1]))


def test_no_textual_or_rich_import():
    code = (
        "import sys, server.sms.sanitize, server.sms.segments\n"
        "bad = sorted(m for m in sys.modules if m.split('.')[0] in ('textual', 'rich'))\n"
        "assert not bad, bad\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
