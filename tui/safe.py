"""The one way untrusted text reaches the screen: neutralised, then literal.

Everything a texter or a network peer can set goes through `safe_text` or
`safe_line` (never into a markup string): control, escape and bidi characters are
shown as visible escapes, and the result is a Rich `Text`, which never parses markup.
"""

from __future__ import annotations

from rich.text import Text

from server.sms.sanitize import neutralise, neutralise_line, truncate


def safe_text(text: str, style: str = "") -> Text:
    """Multi-line untrusted text, rendered literally."""
    return Text(neutralise(text), style=style, end="")


def safe_line(text: str, style: str = "", width: int | None = None) -> Text:
    """Untrusted text on one line (newlines shown as symbols), optionally truncated."""
    line = neutralise_line(text)
    if width is not None:
        line = truncate(line, width)
    return Text(line, style=style, end="", no_wrap=True)


def plain_line(text: str, width: int | None = None) -> str:
    """Untrusted text as a neutralised single-line str, for titles and notifications."""
    line = neutralise_line(text)
    return truncate(line, width) if width is not None else line
