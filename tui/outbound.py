"""The console's calls to the SL API: a new message (f6, and the follow-up of an ended
text's draft) and closing a session (f9). Mixed into `SwitchboardApp` (tui/app.py)."""

from __future__ import annotations

from functools import partial
from typing import TYPE_CHECKING

from .safe import plain_line
from .screens.new_message import NewMessageScreen, OutboundDraft
from .widgets.composer import Composer
from .widgets.drafts import item_phone

if TYPE_CHECKING:
    from .app import SwitchboardApp

    _Base = SwitchboardApp
else:
    _Base = object


class OutboundActions(_Base):
    def _require_sl(self) -> bool:
        if not self.backend.can_send:
            self.notify(
                "No SL API configured: start with --sl-url URL --sl-api-key KEY, or --demo.",
                title="SL API", severity="error",
            )
        return self.backend.can_send

    def action_new_message(self) -> None:
        """f6: the ended item's draft goes out as a new message at once; otherwise a new
        message to any phone (the conversation on screen by default)."""
        composer = self.query_one(Composer)
        if composer.ending is not None and composer.draft.text:
            composer.follow_up()
            return
        if not self._require_sl():
            return
        phone = item_phone(composer.item) if composer.ending is not None else self._phone

        def sent(draft: OutboundDraft | None) -> None:
            if draft is not None:
                self.run_worker(partial(self._send_outbound, draft), group="sl-api", name="send_message")

        self.push_screen(NewMessageScreen(phone), sent)

    async def _send_outbound(self, draft: OutboundDraft, *, follow_up: int | None = None) -> None:
        result = await self.backend.send_message(draft.phone, draft.body, action_expected=draft.action_expected)
        if result.error:
            # A follow-up's draft stays in the composer, to try again or copy.
            self.notify(plain_line(result.error, 200), title="send_message failed", severity="error", timeout=8)
        else:
            self.notify(f"Sent to {plain_line(result.phone, 20)}: ids {', '.join(result.message_ids)}", timeout=4)
            if follow_up is not None:
                self._leave_ended(follow_up)
        if self._phone == result.phone or not self._phone:
            self._show_phone(result.phone)
        self._phones_dirty = True

    def action_close_session(self) -> None:
        if not self._phone or not self._require_sl():
            return
        self.run_worker(partial(self._close_session, self._phone), group="sl-api", name="close_sessions")

    async def _close_session(self, phone: str) -> None:
        error = await self.backend.close_session(phone)
        if error:
            self.notify(plain_line(error, 200), title="close_sessions failed", severity="error", timeout=8)
        else:
            self.notify(f"Asked the SL to close the session with {plain_line(phone, 20)}", timeout=4)

    # -- copy, help, counts ------------------------------------------------------------
