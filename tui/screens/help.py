"""The help screen (f1): every key, and what the operator must weigh before answering."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Markdown

HELP = """\
# Switchboard

## The panels
- **Held** (top left): one row per conversation with texts waiting for your answer. Each row
  shows the time left on its most urgent text (red under 5 s), how many texts wait (×3), the
  kind (MSG or SUB, a new subscriber), the phone and the oldest text. Marks: ✎ a draft in
  progress, ✗ a missed text, ⊘ opted out (blacklisted), ∞ auto-reply loop, ● marked for a bulk
  answer. Below the conversations, *miss* rows are texts that timed out or whose caller hung
  up in this session: open one to write to that phone as a new message (f6). The title counts
  this session's held and missed texts and names the order (the phone list's ✗ counts keep
  every miss across restarts).
- **Phones** (below): every phone with history, most recently active first: ●2 texts in
  you have not had on screen, ✗1 missed texts, ⊘ ∞ as above, the time and the last message
  (← from the texter, → from you, ⤺ the fallback). Enter opens it; more load at the end.
- **Conversation** (centre): the texts and answers of the phone on screen; each text has its
  number (#12) and each answer points back to the text it answered (↳#12).
- **Composer** (below it): your answer to one held text, with its countdown, the segment count
  and a preview of the exact HTTP body. It belongs to that text: if the text ends while you
  type, your draft stays, cannot be sent as an answer, and f6 sends it as a new message.
- **Contact** (right, on wide screens): session, subscription and tags, blacklist, loop,
  carrier, and your notes.
- **Events** (bottom): callbacks that need no answer, and refused requests. ctrl+l hides
  it, then the phones and contact panes too, to give the conversation the room.
- **Status bar**: the Gateway URL to register with the SL, which api_keys are accepted, counts.

## Keys

| Key | What it does |
|---|---|
| `enter` | In the reply, reprocess or tags field: send the answer (an empty reply is not sent) |
| `/name` `tab` | In the reply: fill the composer from the canned reply *name* (enter works too) |
| `ctrl+s` | Send the answer from anywhere |
| `ctrl+o` | Answer with an empty response (nothing goes to the texter) |
| `ctrl+t` | Toggle `close_session` |
| `ctrl+r` | Jump to the `reprocess` field |
| `ctrl+n` `f8` | Next conversation (by the queue's order) |
| `ctrl+b` `f7` | Previous conversation |
| `ctrl+y` | Queue order: oldest first, least time left first, newest first (remembered) |
| `ctrl+l` | Layout: all panes, without the events, queue + conversation + reply (remembered) |
| `up` `down` `enter` | In the queue: move, answer the highlighted conversation |
| `space` | In the queue: mark a conversation for a bulk answer |
| `ctrl+g` | Answer the marked conversations (or every waiting text) with one template |
| `escape` | Discard the draft of a text that can no longer be answered |
| `tab` `shift+tab` | Move between queue, fields and panels |
| `f2` `f3` `f4` | Copy the phone number / message text / last response sent |
| `f5` | Search the whole history (a phone in any written form finds its conversation) |
| `f6` | New message through the SL API (`send_message`); on an ended text, send its draft |
| `f9` | Close the phone's session through the SL API (`close_sessions`) |
| `f10` | Canned replies: create, edit, delete |
| `f12` | Write a note on the phone (kept, never sent) |
| `ctrl+p` | Command palette (every action by name) |
| `f1` | This help |
| `ctrl+q` | Quit: asks first when texts are held; every held request gets the fallback |

## Before you answer
- **auto_subscribe**: the SL subscribes the texter and sends its own confirmation; a reply makes two messages.
- **auto_responded**: the texter already got the keyword's automatic response.
- **Session closed earlier**: the message came out of session (dedicated SMSC) or opened a new one by keyword.
- **Opted out / auto-reply loop**: a reply asks for one confirmation (press enter again).
- **close_session** ends the session after your reply; with **reprocess** it hands the texter to another keyword or app.
- The response preview shows the exact HTTP body the SL will receive. A plain reply that looks like JSON is sent as `{"body": ...}`.
- The countdown is the reply deadline: when it reaches 0 the fallback is sent and the text is marked *missed*.

Press `escape` or `f1` to close.
"""


class HelpScreen(ModalScreen[None]):
    BINDINGS = [
        Binding("escape,f1,q", "dismiss", "Close help", id="help.close"),
    ]

    def compose(self) -> ComposeResult:
        with VerticalScroll(id="help-body"):
            yield Markdown(HELP)
