"""A list of one-line rows drawn as lines: only the rows in view are rendered, and a
change of rows is a repaint of the list, never a layout pass of the screen.

Textual's OptionList lays out every option (wraps and measures each prompt) on each change,
and asks for a layout of the whole screen; with a few hundred phones that took 15-60 ms on
the UI loop once a second, and an enter or an arriving text waited behind it. The queue
(`HeldQueue`) and the phone list (`PhoneList`) are `RowView`s.
"""

from __future__ import annotations

from typing import Hashable

from rich.style import Style
from rich.text import Text
from textual.geometry import Region, Size
from textual.reactive import reactive
from textual.scroll_view import ScrollView
from textual.strip import Strip

from .steady import FrameStyled, set_virtual_size, text_line


_FOCUSED = Style(reverse=True)
_CURSOR = Style(bgcolor="grey23")
"""The cursor's row: with the focus on the list, and without."""


class RowView(FrameStyled, ScrollView, can_focus=True):
    """Rows `0 .. row_count - 1`, a cursor on one of them. The queue and the phone list say
    how many rows they have and what each shows (`row_count`, `row_text`, `row_key`);
    by itself a RowView has none and shows `empty_text`."""

    cursor: reactive[int] = reactive(0, always_update=True, repaint=True)

    _frame: tuple[int, int, bool] = (0, 0, False)

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self._drawn: dict[tuple, Strip] = {}
        """Rows drawn, by `row_key`, width, cursor and focus."""

    empty_text = ""
    """A dim line shown in place of the rows while there are none."""

    @property
    def row_count(self) -> int:
        return 0

    def row_text(self, index: int, width: int) -> Text:
        """Row `index` (below `row_count`), fitted to `width` columns: one line, no wrapping."""
        return Text("", end="")

    def row_key(self, index: int) -> Hashable | None:
        """Everything row `index`'s text depends on but the width and the cursor, or None
        when the row is not to be kept drawn. Rows with a key are drawn once and kept: a
        text arriving or answered moves the rows, and only the new one is drawn again."""
        return None

    @property
    def row_width(self) -> int:
        """The columns a row gets: the list's, less its vertical scrollbar."""
        return self.scrollable_content_region.width

    def rows_changed(self) -> None:
        """The number of rows or what they show changed: repaint the list."""
        set_virtual_size(self, Size(self.size.width, self.row_count))

    def move_cursor(self, index: int) -> bool:
        """Put the cursor on row `index` (within the rows) and the row in view; False when
        there are no rows."""
        if not self.row_count:
            return False
        self.cursor = max(0, min(self.row_count - 1, index))
        self.scroll_to_row(self.cursor)
        return True

    def scroll_to_row(self, index: int) -> None:
        top = self.scroll_offset.y
        height = max(1, self.scrollable_content_region.height)
        if index < top:
            self.scroll_to(y=index, animate=False)
        elif index >= top + height:
            self.scroll_to(y=index - height + 1, animate=False)

    def render_lines(self, crop: Region) -> list[Strip]:
        # What every line of this frame shares, looked up once (the style by FrameStyled).
        self._frame = (self.size.width, self.row_width, self.has_focus)
        return super().render_lines(crop)

    def render_line(self, y: int) -> Strip:
        width, row_width, focused = self._frame
        base = self.frame_style
        index = y + self.scroll_offset.y
        if index >= self.row_count:
            if index == 0 and self.empty_text:
                hint = Text(self.empty_text, style="dim")
                return text_line(hint, self.app.console, width, base)
            return Strip.blank(width, base)
        key = self.row_key(index)
        if key is not None:
            kept = self._drawn.get((key, row_width, index == self.cursor, focused))
            if kept is not None:
                return kept
        text = self.row_text(index, row_width)
        if index == self.cursor:
            text.stylize(_FOCUSED if focused else _CURSOR)
        strip = text_line(text, self.app.console, width, base)
        if key is not None:
            if len(self._drawn) > 8 * max(1, self.size.height):
                self._drawn.clear()
            self._drawn[(key, row_width, index == self.cursor, focused)] = strip
        return strip

    def notify_style_update(self) -> None:
        super().notify_style_update()
        self._drawn.clear()  # a theme or a style changed: the kept rows are in the old one

    def on_focus(self) -> None:
        self.refresh()

    def on_blur(self) -> None:
        self.refresh()

    def on_resize(self) -> None:
        self.virtual_size = Size(self.size.width, self.row_count)


__all__ = ["RowView"]
