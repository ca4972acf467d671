"""The help screen (f1): every key, and what the operator must weigh before answering."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Markdown

HELP = """\
# Switchboard keys

| Key | What it does |
|---|---|
| `enter` | In the reply, reprocess or tags field: send the answer |
| `ctrl+s` | Send the answer from anywhere |
| `ctrl+o` | Answer with an empty response (nothing goes to the texter) |
| `ctrl+t` | Toggle `close_session` |
| `ctrl+r` | Jump to the `reprocess` field |
| `ctrl+n` `f8` | Next held item (newer) |
| `ctrl+b` `f7` | Previous held item (older) |
| `up` `down` `enter` | In the queue: move, answer the highlighted item |
| `tab` `shift+tab` | Move between queue, fields and panels |
| `f2` `f3` `f4` | Copy the phone number / message text / last response sent |
| `f5` | Search the whole history |
| `f6` | New message to any phone through the SL API (`send_message`) |
| `f9` | Close the selected phone's session through the SL API (`close_sessions`) |
| `ctrl+p` | Command palette (every action) |
| `f1` | This help |
| `ctrl+q` | Quit: every held request gets the fallback first |

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
