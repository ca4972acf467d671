"""Redraw only what changed: a footer and a Static update that skip no-op refreshes.

Textual's Footer recomposes (unmounting and mounting every key) on each bindings signal,
and `Static.update` asks for a layout pass even when the text is the same; each makes the
next frame re-arrange and re-render the whole screen, and a key press waits behind it
(docs/performance.md, "What made the console keep up").
"""

from __future__ import annotations

from rich.text import Text
from textual.screen import Screen
from textual.widgets import Footer, Static


def show_text(widget: Static, content: Text | str, *, layout: bool = True) -> None:
    """`widget.update(content)` unless it already shows exactly that (text and styles).

    `layout=False` for a widget whose size cannot change with its text (a fixed height):
    then no layout pass is asked for at all."""
    if _same(widget.content, content):
        return
    widget.update(content, layout=layout)


def _same(shown: object, content: Text | str) -> bool:
    if isinstance(content, Text):
        # Text's == compares the characters and spans only, not the base style
        return (
            isinstance(shown, Text)
            and shown.plain == content.plain
            and shown.style == content.style
            and shown.spans == content.spans
            and (shown.justify, shown.overflow, shown.no_wrap, shown.end)
            == (content.justify, content.overflow, content.no_wrap, content.end)
        )
    return type(shown) is str and shown == content


class SteadyFooter(Footer):
    """A Footer that recomposes only when the keys it shows change.

    Textual's Footer recomposes on every `bindings_updated_signal`, which fires on each
    focus change. Here the signals of one refresh are coalesced into one check, and the
    check recomposes only when the shown bindings (key, label, action, enabled) differ."""

    _signature: tuple | None = None
    _check_pending = False

    def bindings_changed(self, screen: Screen) -> None:
        if self._signature is None:
            # The first signal (bindings ready): let Footer compose as it does.
            if screen.app.app_focus:
                self._signature = self._shown(screen)
            super().bindings_changed(screen)
            return
        if not self._check_pending:
            self._check_pending = True
            self.call_after_refresh(self._check, screen)

    def _check(self, screen: Screen) -> None:
        self._check_pending = False
        if not self.is_attached or screen is not self.screen or not screen.app.app_focus:
            return  # as Footer: no recompose without focus; the signature stays as shown
        signature = self._shown(screen)
        if signature != self._signature:
            self._signature = signature
            super().bindings_changed(screen)

    @staticmethod
    def _shown(screen: Screen) -> tuple:
        return tuple(
            (binding.key, binding.key_display, binding.description, binding.action, enabled, tooltip)
            for (_, binding, enabled, tooltip) in screen.active_bindings.values()
            if binding.show
        )
