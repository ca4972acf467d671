"""Neutralise untrusted text so it can never control a terminal.

Every field a texter or a network peer can set passes through here before it is shown
(console) or printed (headless, CLIs). Escape sequences (CSI, OSC, DCS, SOS, PM, APC, in
their 7-bit and 8-bit forms, terminated or not), C1 codes, C0 controls other than tab and
newline, DEL, bidi controls and invisible format characters are replaced by their visible
escape text (`\\x1b`, `\\u202e`...), so an OSC 52 clipboard write shows up as the literal
text `\\x1b]52;c;...\\x07` instead of reaching the terminal. Markup is not this module's
concern: the console renders the result as literal `Text`.
"""

from __future__ import annotations

import re

_BIDI_AND_INVISIBLE = (
    "\u061c\u200b-\u200f\u2028\u2029\u202a-\u202e\u2060-\u2064\u2066-\u2069\ufeff"
)
# One character that must never reach a terminal raw.
_DANGEROUS_CHAR = f"[\x00-\x08\x0b-\x1f\x7f-\x9f{_BIDI_AND_INVISIBLE}]"

# Whole sequences first, so their parameters are shown with their introducer.
# A string sequence runs to BEL or ST (ESC \\ or U+009C), or to the end of the text.
_SEQUENCE = re.compile(
    "(?:"
    r"(?:\x1b\[|\x9b)[\x30-\x3f]*[\x20-\x2f]*[\x40-\x7e]?"  # CSI ... final
    r"|(?:\x1b[\]PX^_]|[\x9d\x90\x98\x9e\x9f])[^\x07\x1b\x9c]*(?:\x07|\x1b\\|\x9c)?"  # OSC DCS SOS PM APC
    r"|\x1b[\x20-\x2f]*[\x30-\x7e]?"  # other escapes (ESC c, ESC ( B ...), or a lone ESC
    f"|{_DANGEROUS_CHAR}"
    ")"
)
_CHAR = re.compile(_DANGEROUS_CHAR)
_LINE_BREAKS = re.compile("[\t\n]")


def _escape(char: str) -> str:
    code = ord(char)
    return f"\\x{code:02x}" if code <= 0xFF else f"\\u{code:04x}"


def _visible(match: re.Match[str]) -> str:
    return _CHAR.sub(lambda m: _escape(m.group()), match.group())


def neutralise(text: str) -> str:
    """The text with every terminal-controlling character shown as a visible escape.
    Tabs and newlines are kept."""
    if _SEQUENCE.search(text) is None:
        return text
    return _SEQUENCE.sub(_visible, text)


def neutralise_line(text: str) -> str:
    """As `neutralise`, for one-line contexts: newlines show as ⏎ and tabs as ⇥."""
    text = neutralise(text)
    if _LINE_BREAKS.search(text) is None:
        return text
    return text.replace("\n", "⏎").replace("\t", "⇥")


def truncate(text: str, width: int) -> str:
    """At most `width` characters, ending with … when cut."""
    if width <= 0:
        return ""
    if len(text) <= width:
        return text
    return text[: width - 1] + "…"
