"""Neutralise untrusted text so it can never control a terminal.

Every field a texter or a network peer can set (SMS bodies, phone numbers, carrier
names...) passes through here before it is shown (console) or printed (headless, CLIs).

Placeholder scheme: each character a terminal could act on is replaced by its Python
escape, written out as literal text: ``\\xNN`` up to U+00FF, ``\\uNNNN`` above. So the
OSC 52 clipboard write ``ESC ] 5 2 ; c ; a G k = BEL`` is shown as the visible text
``\\x1b]52;c;aGk=\\x07``, a right-to-left override as ``\\u202e`` and a carriage return
as ``\\x0d``. The result holds none of these characters:

- C0 controls except tab and newline (so ESC and CR included), DEL, all C1 codes
  U+0080-U+009F (among them the 8-bit CSI, OSC, DCS, SOS, PM, APC and ST);
- bidi controls: U+061C, U+200E, U+200F, U+202A-U+202E, U+2066-U+2069;
- invisible characters that can hide text: U+200B, U+2060-U+2064, U+FEFF, and the
  U+2028/U+2029 line and paragraph separators. The joiners U+200C/U+200D are kept: they
  cannot hide or reorder text, and emoji sequences (👩‍💻) and Persian script need them;
- lone surrogates U+D800-U+DFFF (not Unicode text: writing one to a strict UTF-8 stream
  raises). Characters beyond the BMP, emoji included, pass through unchanged.

Why escaping characters neutralises whole sequences: every CSI, OSC, DCS, SOS, PM and
APC sequence starts with ESC or a C1 code, and every terminator (BEL, ``ESC \\``, ST) is
one too. Once they are visible text, what lay between them (``[31m``, ``]0;title``) is
plain printable text the terminal just prints; an unterminated sequence cannot swallow
what follows, since the terminal never saw it start. The output is the whole input with
nothing hidden or dropped, and it is stable: ``neutralise(neutralise(x)) ==
neutralise(x)``.

Markup is not this module's concern: the console renders the result as literal text.
Nothing here imports Textual or Rich: the headless gateway and the CLIs use it too.
"""

from __future__ import annotations

import re
import unicodedata

__all__ = ["DANGEROUS", "neutralise", "neutralise_line", "truncate"]

#: One character class: every character `neutralise` replaces. Kept as a single class so
#: the fast path (a clean text, the usual case) is one C-level scan.
DANGEROUS = re.compile(
    "["
    "\x00-\x08\x0b-\x1f\x7f-\x9f"  # C0 but tab and newline; DEL; C1
    "\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069"  # bidi controls
    "\u200b\u2060-\u2064\ufeff\u2028\u2029"  # invisible, line/paragraph separators
    "\ud800-\udfff"  # lone surrogates
    "]"
)


def _escape(char: str) -> str:
    code = ord(char)
    return f"\\x{code:02x}" if code <= 0xFF else f"\\u{code:04x}"


def _visible(match: re.Match[str]) -> str:
    return _escape(match.group())


_search = DANGEROUS.search
_sub = DANGEROUS.sub


def neutralise(text: str) -> str:
    """The text with every character a terminal could act on shown as a visible escape
    (``\\x1b``, ``\\u202e``...). Tabs and newlines are kept; clean text comes back as is."""
    if _search(text) is None:
        return text
    return _sub(_visible, text)


def neutralise_line(text: str) -> str:
    """As `neutralise`, for one-line contexts (a list row, a log line): newlines also show
    as ⏎ and tabs as ⇥."""
    text = neutralise(text)
    if "\n" in text or "\t" in text:
        return text.replace("\n", "⏎").replace("\t", "⇥")
    return text


def _cells(char: str) -> int:
    if unicodedata.combining(char) or unicodedata.category(char) in ("Mn", "Me", "Cf"):
        return 0
    return 2 if unicodedata.east_asian_width(char) in ("W", "F") else 1


def truncate(text: str, width: int) -> str:
    """At most `width` terminal cells, ending with … when cut.

    Wide characters (CJK, most emoji) count two cells, combining marks and format
    characters none; a cut never leaves half a wide character. ASCII text is cut by
    length directly. Neutralise first: the width of a control character means nothing.
    """
    if width <= 0:
        return ""
    if text.isascii():
        return text if len(text) <= width else text[: width - 1] + "…"
    if len(text) <= width // 2:  # fits even if every character were wide
        return text
    used = 0
    cut = None  # the index where a cut keeps room for the ellipsis
    for index, char in enumerate(text):
        cells = _cells(char)
        if cut is None and used + cells > width - 1:
            cut = index
        used += cells
        if used > width:
            return text[:cut] + "…"
    return text
