"""Copy to the system clipboard with pyperclip, falling back to OSC 52 through the app."""

from __future__ import annotations

from typing import Protocol

import pyperclip


class _CanCopy(Protocol):
    def copy_to_clipboard(self, text: str) -> None: ...


def copy_text(app: _CanCopy, text: str) -> str:
    """Copy `text`; return a one-line note saying which way it went.

    pyperclip needs a clipboard tool (xclip, wl-copy, pbcopy...). Without one it
    raises, and `is_available()` is unreliable, so we just try. The fallback is the
    terminal's OSC 52, which cannot confirm the copy: the note says so.
    """
    try:
        pyperclip.copy(text)
    except pyperclip.PyperclipException:
        pass
    except Exception:  # a broken clipboard tool must never take the console down
        pass
    else:
        return "copied to the system clipboard"
    app.copy_to_clipboard(text)
    return "sent to the terminal clipboard (OSC 52; not every terminal accepts it)"
