"""Quitting: ctrl+q asks once when texts are held; a quit, a signal or the screen coming
down answers every held request with the fallback, stops the gateway and syncs the
history, and the process exits within 3 s. Mixed into `SwitchboardApp` (tui/app.py)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from server.process.shutdown import quitting

from .screens.confirm import ConfirmScreen

if TYPE_CHECKING:
    from .app import SwitchboardApp

    _Base = SwitchboardApp
else:
    _Base = object


class Quitting(_Base):
    def _screen_up(self) -> bool:
        """False once quitting has begun: the timers may still fire while Textual takes
        the screen down (it stops running before it prunes the widgets), and then there is
        nothing left to update."""
        return self.is_running and not self._stopping

    async def action_quit(self) -> None:
        """ctrl+q: with texts held, one confirmation that says how many get the fallback."""
        waiting = self.backend.status().counts.get("pending", 0)
        if waiting and not self._stopping and not isinstance(self.screen, ConfirmScreen):
            def answered(yes: bool | None) -> None:
                if yes:
                    self.call_later(self._quit_now)

            texts = "text is" if waiting == 1 else "texts are"
            self.push_screen(ConfirmScreen(
                f"Quit? {waiting} held {texts} answered with the fallback now.",
                yes="enter: quit", no="escape: keep answering"), answered)
            return
        await self._quit_now()

    async def _quit_now(self) -> None:
        await self.shutdown_gateway()
        self.exit()

    def _quit_on_signal(self) -> None:
        """SIGTERM, SIGHUP, SIGINT (server/process/quit_signals.py): as ctrl+q, held requests first."""
        if not self._stopping:
            self.call_later(self._quit_now)

    async def shutdown_gateway(self) -> None:
        """Answer every held request with the fallback, stop listening, sync history."""
        if self._stopping:
            return
        self._stopping = True
        quitting("quit")  # from now on the process exits within 3 s (server/process/shutdown.py)
        self._unsubscribe()
        await self.backend.stop()

    async def on_unmount(self) -> None:
        try:
            await self.shutdown_gateway()
        finally:
            self._signals.release()
            self._gc.give_back()
