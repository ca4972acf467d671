"""The help screen (f1): every key, and what the operator must weigh before answering."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Markdown

HELP = """\
# Switchboard keys

| Key | Where | What it does |
|---|---|---|
| `enter` | reply, reprocess or tags field | Send the answer |
| `ctrl+s` | anywhere | Send the answer |
| `ctrl+o` | anywhere | Answer with an empty response (no reply to the texter) |
| `ctrl+t` | anywhere | Toggle `close_session` |
| `ctrl+r` | anywhere | Jump to the `reprocess` field |
| `ctrl+n` / `f8` | anywhere | Next held item (newer) |
| `ctrl+b` / `f7` | anywhere | Previous held item (older) |
| `tab` / `shift+tab` | anywhere | Move between queue, fields and panels |
| `up` / `down`, `enter` | queue | Move, answer the highlighted item |
| `f2` | anywhere | Copy the phone number |
| `f3` | anywhere | Copy the message body |
| `f4` | anywhere | Copy the last response sent to this phone |
| `ctrl+p` | anywhere | Command palette (every action) |
| `f1` | anywhere | This help |
| `ctrl+q` | anywhere | Quit: every held request gets the fallback first |

## Before you answer
- **auto_subscribe**: the SL subscribes the texter and sends its own confirmation; a reply makes two messages.
- **auto_responded**: the texter already got the keyword's automatic response.
- **Session closed earlier**: the message came out of session (dedicated SMSC) or opened a new one by keyword.
- **close_session** ends the session after your reply; with **reprocess** it hands the texter to another keyword or app.
- The response preview shows the exact HTTP body the SL will receive. A plain reply that looks like JSON is sent as `{"body": ...}`.
- The countdown is the reply deadline: when it reaches 0 the fallback is sent and the item is marked *timed out*.

Press `escape` or `f1` to close.
"""


class HelpScreen(ModalScreen[None]):
    BINDINGS = [
        Binding("escape,f1,q", "dismiss", "Close help", id="help.close"),
    ]

    def compose(self) -> ComposeResult:
        with VerticalScroll(id="help-body"):
            yield Markdown(HELP)
